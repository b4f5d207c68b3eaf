"""Drop-in replacements for other libraries' Python APIs, built on nearkit's indexes."""
