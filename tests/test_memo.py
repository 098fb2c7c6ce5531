"""The identity memo and the interpreter that keeps each node's value."""

from __future__ import annotations

import pytest

from tppolicy.language import ast as A
from tppolicy.language.interpret import Interpreter, MemoInterpreter
from tppolicy.language.ops import EvalError
from tppolicy.memo import ByIdentity


def test_by_identity_keeps_a_value_per_object_and_stays_bounded() -> None:
    calls: list[object] = []
    memo: ByIdentity[A.Expr, str] = ByIdentity(limit=2)

    def compute(node: A.Expr) -> str:
        calls.append(node)
        return repr(node)

    a, b, c = A.Literal("a"), A.Literal("a"), A.Literal("c")  # a == b, not the same object
    assert memo.get(a, compute) == memo.get(a, compute) == repr(a)
    assert memo.get(b, compute) == repr(b)
    assert calls == [a, b]  # equal objects are kept apart: by identity
    memo.get(c, compute)  # full: emptied, then kept
    memo.get(a, compute)
    assert calls == [a, b, c, a]


def test_the_memo_interpreter_gives_the_interpreter_s_values_and_errors() -> None:
    claims = {"r": "Octo/Repo", "n": 3}
    upper = A.Call("lower", (A.Claim("r"),))
    tested: list[A.Expr] = [
        upper, A.Concat(upper, A.Literal("/x")), A.Compare("==", upper, A.Literal("octo/repo")),
        A.ListExpr((upper, A.Literal("y"))), A.Call("before", (A.Claim("r"), A.Literal("#")))]
    plain = Interpreter(claims, {"r": "string", "n": "int"})
    memo = MemoInterpreter(claims, {"r": "string", "n": "int"})
    for _ in range(2):  # the second time from the memo
        for expr in tested:
            try:
                expected = plain.value(expr)
            except EvalError as exc:
                with pytest.raises(EvalError, match=str(exc)):
                    memo.value(expr)
                continue
            assert memo.value(expr) == expected
    # a list kept is handed out as a copy: a caller changing it changes nothing kept
    first = memo.value(tested[3])
    first.append("z")
    assert memo.value(tested[3]) == ["octo/repo", "y"]
