"""SQL databases, read-only by the database: :func:`.actions.sql_actions`.
"""
