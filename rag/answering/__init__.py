"""The answer layer: choose the evidence that answers, decide whether it does, cut the short answer.

Each learned part sits next to the script that trains it; the models ship in ``models/`` in
LightGBM's text format or plain JSON, never pickle.
"""
