"""What the tests share that is not a test: entry-point runners, fakes, small models, test-only callbacks.

Imported as ``helpers.<module>`` both in the test process and in fresh ones: ``tests/`` has no
``__init__.py``, so pytest's default ("prepend") import mode puts ``tests/`` on ``sys.path`` when it loads
``tests/conftest.py``; a fresh process that loads a test-only callback by its ``_target_`` gets ``tests/`` on
``PYTHONPATH`` from ``helpers.scripts.pythonpath_with_tests``.
Nothing here imports a library at package level, so ``tests/conftest.py`` can import from it cheaply.
"""
