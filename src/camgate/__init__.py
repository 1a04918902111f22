"""camgate: a camera cloud gateway."""

__version__ = "0.1.0"
