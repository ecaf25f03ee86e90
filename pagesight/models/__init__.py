"""Framework-free encoders (numpy in and out; torch inside)."""
