"""Images: loading, OCR and vision-language backends, and the VQA action (:func:`.actions.vqa_action`).
"""
