"""Every text of the VQA tools that a model or a user reads, in one place.

Templates are ``str.format`` strings: a missing variable raises ``KeyError``.
"""

from __future__ import annotations

VQA_DESCRIPTION = "Answer a question about the given image"

# -- observations the grounding model reads
OCR_ANSWER = "Text in the image: {text}"
OCR_LINE_SEP = " / "
OCR_NO_TEXT = "No text found in the image."

# -- the question as a vision-language model sees it (LLaVA-1.5's short-answer instruction)
VLM_PROMPT = "{question}\nAnswer the question using a single word or phrase."

# -- tool errors (observations)
NO_IMAGE = "No image was given with the task, so there is nothing to look at."
NO_SUCH_IMAGE = "There is no image {number}: the task has {count} image{s}."
EMPTY_QUESTION = "The question is empty: write VQA([IMG], Question: ...)."
NO_BACKEND = (
    "No vision model is configured, so images cannot be looked at. Configure one with "
    "--vqa-model MODEL.gguf --vqa-mmproj MMPROJ.gguf, or install the OCR backend "
    '(pip install "lumos-graph[vqa]") to read text in images.'
)
NO_ANSWER = "The vision model gave no answer."
BAD_IMAGE = "The image could not be used: {reason}"
VLM_FAILED = "The vision model failed: {reason}"
VLM_TOO_LONG = "the image and the question do not fit in its context of {n_ctx} tokens"

# -- configuration errors (users)
OCR_MISSING = (
    'reading text in images needs rapidocr-onnxruntime: pip install "lumos-graph[vqa]"'
)
