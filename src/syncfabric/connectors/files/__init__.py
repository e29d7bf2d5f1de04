"""Drop-folder files (CSV) written by legacy systems: read complete files only, archive after success."""
