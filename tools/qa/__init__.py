"""Question answering: the local knowledge base, web search and the QA actions (:func:`.actions.qa_actions`).
"""
