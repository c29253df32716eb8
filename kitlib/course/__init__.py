"""Course tools for maintainers and instructors (no lesson imports them): runner, tables, site, release, grading."""
