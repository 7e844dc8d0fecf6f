"""Readers of weights files written by other frameworks (dlib's .dat serialisation), in pure Python."""
