"""The explicit table of search methods (one shared signature, STYLE rule 7):
`method(problems, engine, params, n, progress=False, prm=None, width=...) -> rows`."""

from reasonloop.search.beam import beam
from reasonloop.search.best_of_n import best_of_n

SEARCH = {"best_of_n": best_of_n, "beam": beam}
