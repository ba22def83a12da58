"""Running cells and suites."""
