"""Every output format: text, JSON, DOT/SVG, HTML, JUnit, progress lines."""
