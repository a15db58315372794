"""Media: probing and decoding files at their real timestamps, seeking, and judging whether a frame carries picture."""
