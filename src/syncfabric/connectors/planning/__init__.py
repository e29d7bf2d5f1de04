"""A supply chain planning platform that speaks frePPLe's REST planning input (``/api/input/<entity>/``)."""
