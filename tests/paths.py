"""Where the tests find the repository: one spelling, whatever folder a test lives in."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
