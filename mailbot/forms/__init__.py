"""Forms: the safety check of Excel workbooks, reading them by label, and the field formats
every procedure shares."""
