"""What a video is: the competition layout, the synthetic generator, the decoded cache, datasets.

This package imports none of the project's other packages.
"""
