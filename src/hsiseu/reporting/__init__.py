"""Figures and tables of the study; they read result files and never look at a backend."""
