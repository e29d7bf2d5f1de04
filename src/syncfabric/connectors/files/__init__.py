"""Drop-folder files (CSV, JSON lines, fixed-width) written by legacy systems: read complete files only, archive
after success, never read a file twice."""
