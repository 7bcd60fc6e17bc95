"""Importers: experiments written for other chaos tools, converted into this framework's experiment files."""
