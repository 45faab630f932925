"""An AQL interpreter for the plain subset wpk uses: tokenizer, parser, evaluator."""

from .executor import Data as Data
from .executor import Result as Result
from .executor import execute as execute
from .parser import parse as parse

__all__ = ["Data", "Result", "execute", "parse"]
