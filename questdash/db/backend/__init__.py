"""A Django database backend for QuestDB: ENGINE "questdash.db.backend"."""
