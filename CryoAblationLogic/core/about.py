"""What the software is and what it is for: its version and the research-use note every front end shows."""

__version__ = "0.1.0"

RESEARCH_USE_NOTE = (
    "CryoAblation is research software. It is not a medical device and has not been cleared or "
    "approved for clinical use; its predictions must not be the sole basis of a treatment decision."
)
