"""mailbot: the mail desk of the capacity market (容量市場) procedures.

The public surface is the `mailbot` command and the contract in SPEC §9; everything
inside the package may move.
"""

__version__ = "0.1.0"
