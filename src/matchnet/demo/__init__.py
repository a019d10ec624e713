"""A browser demo of one-shot learning: draw a few labelled examples, draw a query, see the attention.

``matchnet.demo.core`` holds the support set and the inference (no web dependencies),
``matchnet.demo.alphabets`` reads Omniglot evaluation alphabets, ``matchnet.demo.app`` builds the
Gradio page and ``src/demo.py`` starts it.
"""

from matchnet.demo.core import DemoModel, Example, Prediction, SupportSet

__all__ = ["DemoModel", "Example", "Prediction", "SupportSet"]
