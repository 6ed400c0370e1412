"""lmsi: Large Language Models Can Self-Improve (Huang et al., 2022), as a package and CLI."""

__version__ = "0.1.0"
