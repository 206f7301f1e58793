"""The LUMOS maths actions (sympy, each call in an isolated worker process): :func:`.actions.math_actions`.
"""
