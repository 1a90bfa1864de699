"""The torch-free half of `stylecast validate`: the `summary.json` contract (``summary``), what a
validation hands the report (``results``) and the report itself: documents (``report``), their
tables (``tables``), the loss chart (``charts``) and the picture grids (``pictures``).

Nothing here imports torch or onnxruntime (numpy, Pillow and matplotlib only), so a report can
be read, re-rendered or checked on any machine. The computing side is ``stylecast.training``.
"""
