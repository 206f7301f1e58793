"""Training: training data and its converters, the contamination check, and the LoRA training
loop with its model side. Nothing here runs at inference.
"""
