"""(see package docstring, filled in by its issue)"""
