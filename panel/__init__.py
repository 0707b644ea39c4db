"""The ctpanel Django project."""
