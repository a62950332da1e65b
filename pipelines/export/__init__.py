"""Exports for accreditation surveyors (CARF, the Joint Commission)."""
