"""Mutants of the reference solutions, generated from their syntax trees.

Each operator looks at one node of a solution region (the code between `### BEGIN SOLUTION` and
`### END SOLUTION`, never the given signature or docstring) and proposes small, plausible mistakes:
an operator swapped, a constant changed, a term dropped, `mean` for `sum`, another `dim`, ... A
mutant is the whole solution cell rewritten with exactly one of them.
"""
from __future__ import annotations

import ast
import copy
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator

from grader import notebooks

ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
              ast.FloorDiv: ast.Div, ast.MatMult: ast.Mult, ast.Mod: ast.FloorDiv}
COMPARISON = {ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt,), ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt,),
              ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
              ast.In: (ast.NotIn,), ast.NotIn: (ast.In,)}
REDUCTIONS = {"mean": "sum", "sum": "mean", "nanmean": "nansum", "nansum": "nanmean"}
EXP_LOG = {"exp": "log", "log": "exp", "log1p": "expm1", "expm1": "log1p", "log_softmax": "softmax",
           "softmax": "log_softmax", "logsumexp": "sum"}
RANDOM = {"randn": "rand", "rand": "randn", "randn_like": "rand_like", "rand_like": "randn_like"}
# Activation modules and functions, each with the activation a mutant puts in its place.
ACTIVATIONS = {"ReLU": "Sigmoid", "LeakyReLU": "Sigmoid", "ELU": "Sigmoid", "GELU": "Sigmoid", "SiLU": "Sigmoid",
               "Softplus": "ReLU", "Sigmoid": "ReLU", "Tanh": "ReLU"}
ACTIVATION_FUNCTIONS = {"relu": "sigmoid", "leaky_relu": "sigmoid", "elu": "sigmoid", "gelu": "sigmoid",
                        "silu": "sigmoid", "softplus": "relu", "sigmoid": "relu", "tanh": "relu"}


@dataclass(frozen=True)
class Mutant:
    """One solution cell with one small change."""
    notebook: str
    cell: str           # grade_id of the solution cell
    operator: str       # which kind of mistake
    line: str           # the changed line of the reference, stripped
    before: str         # the changed expression, as written in the reference (unparsed)
    after: str          # what the mutant has instead
    code: str           # the mutant's whole cell
    occurrence: int = 0  # tells apart the same change made at two places of one line

    @property
    def key(self) -> str:
        """A name that survives unrelated edits of the cell: notebook, cell, line and change."""
        text = f"{self.notebook}|{self.cell}|{self.line}|{self.before}|{self.after}|{self.occurrence}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def change(self) -> str:
        """The change, for people: `before` -> `after`."""
        return f"{self.before}  ->  {self.after}"


# --- the operators: each takes a node (and its enclosing function) and yields replacement nodes ------

def _name_of(func: ast.expr) -> str | None:
    """The called name of `f(...)` or `x.f(...)`."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _renamed_call(node: ast.AST, names: dict[str, str]) -> Iterator[ast.AST]:
    """`node` with its called or referenced name replaced through `names`."""
    target = node.func if isinstance(node, ast.Call) else node
    name = _name_of(target) if isinstance(target, (ast.Name, ast.Attribute)) else None
    if name in names:
        new = copy.deepcopy(node)
        new_target = new.func if isinstance(new, ast.Call) else new
        if isinstance(new_target, ast.Name):
            new_target.id = names[name]
        else:
            new_target.attr = names[name]
        yield new


def arithmetic(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """`a + b` -> `a - b`, `*` <-> `/`, `**` -> `*`, `@` -> `*`."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITHMETIC:
        new = copy.deepcopy(node)
        new.op = ARITHMETIC[type(node.op)]()
        yield new


def comparison(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """`<` -> `<=` or `>`, `==` <-> `!=`, `is` <-> `is not`."""
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        for replacement in COMPARISON.get(type(node.ops[0]), ()):
            new = copy.deepcopy(node)
            new.ops = [replacement()]
            yield new


def constant(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """A number changed: 0 -> 1, 1 -> 0 or 2, 2 -> 1 or 4, others doubled and halved."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = node.value
        choices = {0: [1], 1: [0, 2], 2: [1, 4]}.get(value)
        if choices is None:
            choices = [value * 2, value // 2 if isinstance(value, int) else value / 2]
        for choice in choices:
            if choice != value:
                yield ast.Constant(type(value)(choice))


def drop_term(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """A term dropped from a sum or difference: `a + b` -> `a`, -> `b`."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        yield copy.deepcopy(node.left)
        yield copy.deepcopy(node.right)


def reduction(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """`mean` <-> `sum` (functions and methods)."""
    if isinstance(node, ast.Call):
        yield from _renamed_call(node, REDUCTIONS)


def dim(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """The `dim=` of a call changed to another axis (or dropped, reducing over everything)."""
    if not isinstance(node, ast.Call):
        return
    for index, keyword in enumerate(node.keywords):
        if keyword.arg not in ("dim", "axis"):
            continue
        value = keyword.value
        number = -value.operand.value if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub) \
            and isinstance(value.operand, ast.Constant) else getattr(value, "value", None)
        others = [0, 1] if not isinstance(number, int) else [d for d in (0, 1, -1) if d != number]
        if number == -1:
            others = [0]
        for other in others:
            new = copy.deepcopy(node)
            new.keywords[index].value = ast.Constant(other) if other >= 0 else \
                ast.UnaryOp(ast.USub(), ast.Constant(-other))
            yield new
        new = copy.deepcopy(node)
        del new.keywords[index]
        if _name_of(node.func) in ("sum", "mean", "amax", "amin", "logsumexp", "norm"):
            yield new


def swap_arguments(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """The first two positional arguments of a call swapped."""
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
            isinstance(a, ast.Starred) for a in node.args[:2]):
        if ast.dump(node.args[0]) != ast.dump(node.args[1]):
            new = copy.deepcopy(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            yield new


def exp_log(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """`exp` <-> `log` (and their kin: log1p <-> expm1, softmax <-> log_softmax)."""
    if isinstance(node, ast.Call):
        yield from _renamed_call(node, EXP_LOG)


def sign(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """A sign flipped: `-x` -> `x`, and a returned value negated."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield copy.deepcopy(node.operand)
    if isinstance(node, ast.Return) and node.value is not None and not isinstance(node.value, (ast.Tuple, ast.Constant)):
        yield ast.Return(ast.UnaryOp(ast.USub(), copy.deepcopy(node.value)))


def random(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """`torch.randn` <-> `torch.rand` (and their `_like` forms)."""
    if isinstance(node, ast.Call):
        yield from _renamed_call(node, RANDOM)


def activation(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """An activation removed (`nn.Identity()`, or its input) or replaced by another one."""
    if not isinstance(node, ast.Call):
        return
    name = _name_of(node.func)
    if name in ACTIVATIONS:
        yield ast.Call(ast.Attribute(ast.Name("nn", ast.Load()), "Identity", ast.Load()), [], [])
        yield ast.Call(ast.Attribute(ast.Name("nn", ast.Load()), ACTIVATIONS[name], ast.Load()), [], [])
    elif name in ACTIVATION_FUNCTIONS:
        if isinstance(node.func, ast.Attribute) and not node.args:   # x.relu()
            yield copy.deepcopy(node.func.value)
        elif node.args:
            yield copy.deepcopy(node.args[0])
        yield from _renamed_call(node, ACTIVATION_FUNCTIONS)


def return_input(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[ast.AST]:
    """A returned value replaced by one of the function's inputs."""
    if isinstance(node, ast.Return) and node.value is not None and function is not None:
        returned = ast.unparse(node.value)
        for argument in function.args.args + function.args.kwonlyargs:
            if argument.arg not in ("self", "cls") and argument.arg != returned:
                yield ast.Return(ast.Name(argument.arg, ast.Load()))


OPERATORS: dict[str, Callable[[ast.AST, ast.FunctionDef | None], Iterator[ast.AST]]] = {
    operator.__name__: operator for operator in
    (arithmetic, comparison, constant, drop_term, reduction, dim, swap_arguments, exp_log, sign, random,
     activation, return_input)
}


# --- applying them to a solution cell ------------------------------------------------------------

def solution_lines(source: str) -> set[int]:
    """Line numbers (1-based, in the cell without its solution markers) inside solution regions."""
    inside, lines, number = False, set(), 0
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("### BEGIN SOLUTION"):
            inside = True
            continue
        if stripped.startswith("### END SOLUTION"):
            inside = False
            continue
        number += 1
        if inside:
            lines.add(number)
    return lines


def _is_docstring(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Whether `node` is (part of) a docstring expression."""
    parent = parents.get(id(node))
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and isinstance(parent, ast.Expr)


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, ast.FunctionDef | None]]:
    """Every node with its parent and enclosing function, in a fixed order."""
    def visit(node, parent, function):
        yield node, parent, function
        inner = node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
        for child in ast.iter_child_nodes(node):
            yield from visit(child, node, inner)
    yield from visit(tree, None, None)


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put `new` where `old` is among `parent`'s fields."""
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                if item is old:
                    value[index] = new
                    return
    raise ValueError("node not found in its parent")


def mutants_of_cell(notebook: str, cell: str, source: str,
                    operators: dict[str, Callable] = OPERATORS) -> list[Mutant]:
    """Every single-change mutant of the solution regions of one solution cell's `source`."""
    code = notebooks.solution_code(source)
    lines = solution_lines(source)
    code_lines = code.splitlines()
    tree = ast.parse(code)
    nodes = list(_walk(tree))
    parents = {id(node): parent for node, parent, _ in nodes}
    found: list[Mutant] = []
    seen: set[str] = {ast.unparse(tree)}
    occurrences: dict[tuple[str, str, str], int] = {}
    for index, (node, parent, function) in enumerate(nodes):
        if parent is None or getattr(node, "lineno", None) not in lines or _is_docstring(node, parents):
            continue
        for name, operator in operators.items():
            for replacement in operator(node, function):
                before, after = ast.unparse(node), ast.unparse(replacement)
                if before == after:
                    continue
                mutated = copy.deepcopy(tree)
                target, target_parent, _ = list(_walk(mutated))[index]
                _replace(target_parent, target, replacement)
                mutant_code = ast.unparse(ast.fix_missing_locations(mutated))
                if mutant_code in seen:   # two operators can make the same program, or the reference itself
                    continue
                seen.add(mutant_code)
                line = code_lines[node.lineno - 1].strip()
                occurrence = occurrences.get((line, before, after), 0)
                occurrences[(line, before, after)] = occurrence + 1
                found.append(Mutant(notebook, cell, name, line, before, after, mutant_code, occurrence))
    return found
