"""The command line, one module per command group; `python -m clipinverter_core` (__main__.py) dispatches.

    bundles.py   convert, info, download, standin      photos.py    edit, align
    video.py     edit-video                            evaluate.py  evaluate
    track.py     track                                 clips.py     reading clips, their tracks (shared)
    train.py     train, export                         bench.py     bench

Each module's add_parser(sub) adds its commands, each with set_defaults(run=...). Nothing heavy is imported until
a command runs: the parser is built on every start.
"""
