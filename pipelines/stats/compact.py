"""A design matrix kept small: category codes instead of one-hot float64 columns.

A one-hot design is mostly 0/1 columns: the intercept, the levels of each categorical
covariate, the missing-value flags, the arm. Stored as float64 they take 8 bytes a cell.
:class:`CompactMatrix` keeps the categorical covariates as codes, the intercept as nothing at
all, and only the numeric columns as float64. Several covariates share one code a row (a
:class:`Group`: the covariates' codes in mixed radix, at most ``GROUP_LEVELS`` combinations),
so that a design's 13 categorical covariates and flags hold three small integers a row
instead of thirteen. The IOP / residential design of 51 columns takes 37 bytes a row (four
numbers, three group codes) instead of 408 (45 with one code per covariate): at 25 million
episodes (14 million rows) ~0.5 GB instead of 5.7 GB.

It does what the statistics do with a design, with the results of the dense float64 matrix to
rounding (sums are formed in another order):

* ``X @ b`` adds up, for each group, a table of its combinations' contributions and gathers it
  by code (one gather a group); ``r @ X`` and ``X.T @ r`` sum ``r`` by combination (one
  ``np.bincount`` a group), each covariate's sums then coming from the small table: fewer
  passes over the rows than one covariate at a time, and no slower than the dense float64
  product (benchmarks/README.md, Measurements: pipelines/stats/compact.py);
* X'WX (:func:`pipelines.stats.logistic.xtwx`) is formed from sums of the weights by code
  (:meth:`CompactMatrix.weighted_gram`), at a fraction of the time of the rows expanded to
  float64 block by block, and the balance moments likewise (:meth:`CompactMatrix.moments`): no
  row is expanded;
* rows and columns are selected (a column selection shares the codes), a column appended (a
  0/1 column as the last digit of the smallest group when it has room).

:func:`pipelines.stats.design.build_design` chooses it when the dense matrix would exceed
``DENSE_LIMIT_BYTES``; below that the dense float64 matrix is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

#: A CompactMatrix of more rows refuses to become one dense array: an operation that would
#: expand all of it is a bug, not something to do quietly at 25 million rows.
DENSIFY_ROWS = 250_000


#: Combinations of levels one group of covariates may hold (its table of sums is this long).
GROUP_LEVELS = 1 << 12
#: Rows :meth:`CompactMatrix.weighted_gram` sums at a time.
GRAM_ROWS = 1 << 20
#: Cells of a table of two groups' combinations that X'WX counts in one pass (else it counts
#: the first group's combinations against each member of the second, one pass each).
JOINT_CELLS = 1 << 22


def _code_dtype(levels: int) -> np.dtype:
    return np.dtype(np.uint8 if levels <= 1 << 8 else np.uint16 if levels <= 1 << 16 else np.uint32)


class Group:
    """One code a row for several categorical covariates: covariate k's code times the product
    of the levels of the covariates after it, summed (mixed radix); ``levels`` combinations."""

    __slots__ = ("codes", "levels")

    def __init__(self, codes: np.ndarray, levels: int):
        self.codes, self.levels = codes, int(levels)

    @classmethod
    def pack(cls, arrays: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[Group, list[int]]:
        """The group of ``arrays`` (codes below ``sizes``) and each one's stride."""
        levels = int(np.prod(sizes, dtype=np.int64))
        strides = [int(np.prod(sizes[k + 1:], dtype=np.int64)) for k in range(len(sizes))]
        if len(arrays) == 1:
            return cls(np.asarray(arrays[0]).astype(_code_dtype(levels), copy=False), levels), strides
        dtype = _code_dtype(levels)
        codes = np.zeros(len(arrays[0]), dtype=dtype)
        for values, stride in zip(arrays, strides):
            codes += np.asarray(values).astype(dtype) * dtype.type(stride)
        return cls(codes, levels), strides

    def take(self, idx: np.ndarray) -> Group:
        return Group(self.codes[idx], self.levels)


class Codes:
    """A categorical covariate: its codes (``size`` of them) within a :class:`Group` (at
    ``stride``) and, per code, the column it sets (-1: none, the reference level or a level
    whose column is not in the matrix)."""

    __slots__ = ("group", "stride", "column")

    def __init__(self, group: Group, stride: int, column: np.ndarray):
        self.group, self.stride, self.column = group, int(stride), np.asarray(column, dtype=np.int64)

    @property
    def size(self) -> int:
        return self.column.size

    @property
    def set(self) -> np.ndarray:
        return np.flatnonzero(self.column >= 0)

    def of_group(self) -> np.ndarray:
        """This covariate's code for each of the group's combinations."""
        return (np.arange(self.group.levels) // self.stride) % self.size

    def part(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """The codes of rows start:stop."""
        g = self.group.codes[start:stop]
        if self.stride == 1 and self.size == self.group.levels:
            return g
        return (g // g.dtype.type(self.stride)) % g.dtype.type(self.size)

    @staticmethod
    def packed(arrays: Sequence[np.ndarray], columns: Sequence[Sequence[int]]) -> list[Codes]:
        """Codes of several covariates (``arrays[k]``: codes below ``len(columns[k])``), packed
        in order into groups of at most GROUP_LEVELS combinations and at most a sixteenth of the
        rows (a group's table, built at each product, stays small beside the rows it serves)."""
        n = len(arrays[0]) if arrays else 0
        cap = max(min(GROUP_LEVELS, n // 16), 1)
        out: list[Codes] = []
        pending: list[int] = []

        def close() -> None:
            if pending:
                group, strides = Group.pack([arrays[k] for k in pending], [len(columns[k]) for k in pending])
                out.extend(Codes(group, s, columns[k]) for k, s in zip(pending, strides))
                pending.clear()

        levels = 1
        for k, column in enumerate(columns):
            if pending and levels * len(column) > cap:
                close()
                levels = 1
            pending.append(k)
            levels *= len(column)
        close()
        return out


def _groups(codes: Sequence[Codes]) -> dict[int, tuple[Group, list[Codes]]]:
    """The distinct groups of ``codes`` with their members."""
    out: dict[int, tuple[Group, list[Codes]]] = {}
    for c in codes:
        out.setdefault(id(c.group), (c.group, []))[1].append(c)
    return out


class CompactMatrix:
    """An n x p float64 matrix: an intercept column (or none), categorical covariates as
    :class:`Codes`, and float64 columns ``numeric`` (n x m, Fortran) at positions ``numeric_at``."""

    # ndarray @ CompactMatrix defers to __rmatmul__
    __array_ufunc__ = None
    ndim = 2
    dtype = np.dtype(float)

    def __init__(self, n: int, p: int, intercept: int | None, codes: Sequence[Codes],
                 numeric: np.ndarray, numeric_at: np.ndarray):
        self.shape = (n, p)
        self.intercept = intercept
        self.codes = tuple(codes)
        self.groups = _groups(self.codes)  # the distinct groups of ``codes``, with their members
        self.numeric = numeric
        self.numeric_at = np.asarray(numeric_at, dtype=np.int64)  # -1: a column not in the matrix

    @property
    def nbytes(self) -> int:
        return sum(g.codes.nbytes for g, _ in self.groups.values()) + self.numeric.nbytes

    # -- products ----------------------------------------------------------------------------
    def __matmul__(self, other):
        """``X @ b`` for b of shape (p,) or (p, m)."""
        b = np.asarray(other, dtype=float)
        if b.ndim == 2:  # column by column: gathers of scalars are several times faster
            out = np.empty((self.shape[0], b.shape[1]))
            for i in range(b.shape[1]):
                out[:, i] = self @ b[:, i]
            return out
        out = np.zeros(self.shape[0])
        if self.intercept is not None:
            out += b[self.intercept]
        for group, members in self.groups.values():
            table = np.zeros(group.levels)  # each combination's contribution
            for c in members:
                coef = np.zeros(c.size)
                coef[c.set] = b[c.column[c.set]]
                table += coef[c.of_group()]
            out += table[group.codes]
        have = self._numeric_in()
        if have is not None:
            out += self.numeric[:, have] @ b[self.numeric_at[have]]
        return out

    def __rmatmul__(self, other):
        """``r @ X`` for r of shape (n,) or (m, n)."""
        r = np.asarray(other, dtype=float)
        rows = r[None, :] if r.ndim == 1 else r
        out = np.zeros((rows.shape[0], self.shape[1]))
        if self.intercept is not None:
            out[:, self.intercept] = rows.sum(axis=1)
        for group, members in self.groups.values():
            for i, ri in enumerate(rows):
                sums = np.bincount(group.codes, weights=ri, minlength=group.levels)  # by combination
                for c in members:
                    out[i, c.column[c.set]] = np.bincount(c.of_group(), weights=sums, minlength=c.size)[c.set]
        have = self._numeric_in()
        if have is not None:
            out[:, self.numeric_at[have]] = rows @ self.numeric[:, have]
        return out[0] if r.ndim == 1 else out

    @property
    def _numeric_cols(self) -> np.ndarray:
        """Columns of ``numeric`` that are in the matrix."""
        return np.flatnonzero(self.numeric_at >= 0)

    def _numeric_in(self) -> slice | np.ndarray | None:
        """The numeric columns in the matrix: a slice when all are (no copy), else indexes."""
        have = self._numeric_cols
        if not have.size:
            return None
        return slice(None) if have.size == self.numeric.shape[1] else have

    @property
    def T(self) -> _Transposed:  # noqa: N802 (numpy's name)
        return _Transposed(self)

    def column_sums(self, squared: bool = False) -> np.ndarray:
        out = np.zeros(self.shape[1])
        if self.intercept is not None:
            out[self.intercept] = self.shape[0]
        for group, members in self.groups.values():  # 0/1 columns: the sum of squares is the sum
            counts = np.bincount(group.codes, minlength=group.levels)
            for c in members:
                out[c.column[c.set]] = np.bincount(c.of_group(), weights=counts, minlength=c.size)[c.set]
        for k in self._numeric_cols:
            col = self.numeric[:, k]
            out[self.numeric_at[k]] = col @ col if squared else col.sum()
        return out

    def moments(self, column, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X'w, (X*X)'w and sum(w) for the weight vectors ``column(0)`` .. ``column(k-1)``, one
        at a time: per-code sums, and x^2 = x for the 0/1 columns."""
        s1 = np.zeros((self.shape[1], k))
        tot = np.zeros(k)
        have = self._numeric_cols
        squares = np.zeros((have.size, k))
        for j in range(k):
            w = column(j)
            s1[:, j] = w @ self
            tot[j] = w.sum()
            for i, c in enumerate(have):
                squares[i, j] = np.einsum("i,i,i->", self.numeric[:, c], self.numeric[:, c], w)
        s2 = s1.copy()
        s2[self.numeric_at[have]] = squares
        return s1, s2, tot

    def weighted_gram(self, w: np.ndarray) -> np.ndarray:
        """X' diag(w) X from sums of ``w`` by code, never a dense row.

        ``w`` summed by each group's combination gives the group's own block (and the
        intercept's row); summed by the pair (combination of a group, code of a later group's
        member, or of a later group when the two groups' table is small) the cross block of
        the two; ``w`` times each numeric column summed by combination the numeric columns'
        cross blocks. At 51 columns that is ~20 ``np.bincount`` over the rows instead of every
        row expanded to float64 and multiplied, at a fraction of the time. Equal to the dense
        product to rounding. Rows are summed GRAM_ROWS at a time:
        beside the rows it holds a few vectors of that many numbers, whatever the rows."""
        w = np.asarray(w, dtype=float)
        n, p = self.shape
        have = self._numeric_cols
        m = have.size
        groups = [(group, members, self._indicators(members, group.levels))
                  for group, members in self.groups.values()]
        # (group, later group, None: summed by both groups' combinations, or a member of the
        # later group: by the first group's combination and that member's code)
        pairs: list[tuple[int, int, Codes | None]] = []
        for g, (group, _, _) in enumerate(groups):
            for h in range(g + 1, len(groups)):
                other, later, _ = groups[h]
                joint = group.levels * other.levels <= JOINT_CELLS
                pairs += [(g, h, None)] if joint else [(g, h, c) for c in later]
        sums = [np.zeros(group.levels) for group, _, _ in groups]
        by_code = [np.zeros((group.levels, m)) for group, _, _ in groups]
        by_pair = [np.zeros((groups[g][0].levels, groups[h][0].levels if c is None else c.size)) for g, h, c in pairs]
        numbers = np.zeros((m, m))
        number_sums = np.zeros(m)
        total = 0.0
        for s in range(0, n, GRAM_ROWS):
            e_ = min(s + GRAM_ROWS, n)
            ws = w[s:e_]
            total += ws.sum()
            codes = [group.codes[s:e_] for group, _, _ in groups]
            for g, (group, _, _) in enumerate(groups):
                sums[g] += np.bincount(codes[g], weights=ws, minlength=group.levels)
            for i, k in enumerate(have):
                wz = self.numeric[s:e_, k] * ws
                number_sums[i] += wz.sum()
                for g, (group, _, _) in enumerate(groups):
                    by_code[g][:, i] += np.bincount(codes[g], weights=wz, minlength=group.levels)
                for j in range(i, m):
                    numbers[i, j] += wz @ self.numeric[s:e_, have[j]]
            for t, (g, h, c) in enumerate(pairs):
                size, second = (groups[h][0].levels, codes[h]) if c is None else (c.size, c.part(s, e_))
                pair = codes[g].astype(np.intp)
                pair *= size
                pair += second
                by_pair[t] += np.bincount(pair, weights=ws, minlength=by_pair[t].size).reshape(by_pair[t].shape)
        out = np.zeros((p, p))
        at = self.numeric_at[have]
        i0 = self.intercept
        if i0 is not None:
            out[i0, i0] = total
            out[i0, at] += number_sums
            out[at, i0] += number_sums
        numbers = np.triu(numbers) + np.triu(numbers, 1).T
        out[np.ix_(at, at)] += numbers
        for g, (_, _, e) in enumerate(groups):
            out += e.T @ (sums[g][:, None] * e)  # its own block: 0/1 columns, a level meets only itself
            if i0 is not None:
                out[i0] += sums[g] @ e
                out[:, i0] += sums[g] @ e
            cross = e.T @ by_code[g]  # its columns against the numeric ones
            out[:, at] += cross
            out[at, :] += cross.T
        for t, (g, h, c) in enumerate(pairs):
            e = groups[g][2]
            if c is None:
                cross = (e.T @ by_pair[t]) @ groups[h][2]
                out += cross + cross.T
            else:
                cols = c.column[c.set]
                cross = e.T @ by_pair[t][:, c.set]
                out[:, cols] += cross
                out[cols, :] += cross.T
        return out

    def _indicators(self, members: Sequence[Codes], levels: int) -> np.ndarray:
        """A (levels x p) 0/1 matrix: the columns each combination of a group's codes sets."""
        e = np.zeros((levels, self.shape[1]))
        combos = np.arange(levels)
        for c in members:
            column = c.column[c.of_group()]
            on = column >= 0
            e[combos[on], column[on]] = 1.0
        return e

    # -- dense rows --------------------------------------------------------------------------
    def _dense(self) -> np.ndarray:
        """Every row as a dense Fortran float64 array (``__array__``, small matrices only)."""
        out = np.empty(self.shape, order="F")
        if self.intercept is not None:
            out[:, self.intercept] = 1.0
        for c in self.codes:  # every column is written whole: one comparison per level
            part = c.part()
            for code in c.set:
                np.equal(part, code, out=out[:, c.column[code]], casting="unsafe")
        for k in self._numeric_cols:
            out[:, self.numeric_at[k]] = self.numeric[:, k]
        return out

    # -- selection ---------------------------------------------------------------------------
    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        out = self if _everything(rows) else self.take_rows(rows)
        if isinstance(cols, (int, np.integer)):
            return out.column(int(cols) % self.shape[1])
        return out if _everything(cols) else out.take_columns(np.arange(self.shape[1])[cols])

    def column(self, j: int) -> np.ndarray:
        """Column j as a float64 vector."""
        if j == self.intercept:
            return np.ones(self.shape[0])
        for c in self.codes:
            code = np.flatnonzero(c.column == j)
            if code.size:
                return (c.part() == code[0]).astype(float)
        k = np.flatnonzero(self.numeric_at == j)
        if not k.size:
            raise IndexError(j)
        return self.numeric[:, k[0]].copy()

    def take_columns(self, cols: Sequence[int]) -> CompactMatrix:
        """Columns ``cols`` in that order, sharing this matrix's storage."""
        cols = np.asarray(cols, dtype=np.int64)
        new = np.full(self.shape[1] + 1, -1, dtype=np.int64)  # old position -> new; [-1] stays -1
        new[cols] = np.arange(cols.size)
        intercept = None if self.intercept is None or new[self.intercept] < 0 else int(new[self.intercept])
        codes = [Codes(c.group, c.stride, new[c.column]) for c in self.codes]
        return CompactMatrix(self.shape[0], cols.size, intercept, [c for c in codes if c.set.size],
                             self.numeric, new[self.numeric_at])

    def take_rows(self, rows) -> CompactMatrix:
        """Rows by slice, boolean mask or indexes, as a new matrix of its own storage."""
        if isinstance(rows, slice):
            idx = np.arange(self.shape[0])[rows]
        else:
            rows = np.asarray(rows)
            idx = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        have = self._numeric_cols
        numeric = np.empty((idx.size, have.size), order="F")
        for i, k in enumerate(have):
            np.take(self.numeric[:, k], idx, out=numeric[:, i])
        taken = {key: group.take(idx) for key, (group, _) in self.groups.items()}
        return CompactMatrix(idx.size, self.shape[1], self.intercept,
                             [Codes(taken[id(c.group)], c.stride, c.column) for c in self.codes],
                             numeric, self.numeric_at[have])

    def with_column(self, values: np.ndarray) -> CompactMatrix:
        """[X, values], sharing this matrix's storage: 0/1 values as codes, others as float64."""
        v = np.asarray(values)
        p = self.shape[1]
        if np.all((v == 0) | (v == 1)):
            return CompactMatrix(self.shape[0], p + 1, self.intercept, self._with_flag(v, p),
                                 self.numeric, self.numeric_at)
        numeric = np.empty((self.shape[0], self.numeric.shape[1] + 1), order="F")
        numeric[:, :-1] = self.numeric
        numeric[:, -1] = v
        return CompactMatrix(self.shape[0], p + 1, self.intercept, self.codes, numeric,
                             np.append(self.numeric_at, p))

    def _with_flag(self, v: np.ndarray, p: int) -> list[Codes]:
        """The codes with a 0/1 column ``v`` at position ``p`` added: the last digit of the
        group with the fewest combinations when it has room (a group fewer for every product),
        else a group of its own."""
        cap = max(min(GROUP_LEVELS, self.shape[0] // 16), 1)
        small = min((group for group, _ in self.groups.values()), key=lambda g: g.levels, default=None)
        if small is None or small.levels * 2 > cap:
            return [*self.codes, *Codes.packed([v], [[-1, p]])]
        group, _ = Group.pack([small.codes, v], [small.levels, 2])
        return [*(Codes(group, c.stride * 2, c.column) if c.group is small else c for c in self.codes),
                Codes(group, 1, [-1, p])]

    def __array__(self, dtype=None, copy=None):
        if self.shape[0] > DENSIFY_ROWS:
            raise TypeError(f"a CompactMatrix of {self.shape[0]} rows is not expanded whole")
        out = self._dense()
        return out if dtype is None else out.astype(dtype)


class _Transposed:
    __array_ufunc__ = None

    def __init__(self, m: CompactMatrix):
        self._m = m
        self.shape = m.shape[::-1]

    def __matmul__(self, other):
        """X.T @ r for r of shape (n,) or (n, m)."""
        other = np.asarray(other, dtype=float)
        return (other.T @ self._m).T if other.ndim == 2 else other @ self._m


def _everything(key) -> bool:
    return isinstance(key, slice) and key == slice(None)


def row_blocks(X, size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, rows start:stop) of a dense array, as views. A CompactMatrix is refused:
    its products sum by code (weighted_gram, moments) rather than expand blocks of rows."""
    if isinstance(X, CompactMatrix):
        raise TypeError("a CompactMatrix is not expanded block by block: use its own sums")
    for s in range(0, X.shape[0], size):
        yield s, min(s + size, X.shape[0]), X[s : s + size]


def column_sums(X, squared: bool = False) -> np.ndarray:
    """Sum over rows of each column (of its squares), dense or compact."""
    if isinstance(X, CompactMatrix):
        return X.column_sums(squared)
    return np.einsum("ij,ij->j", X, X) if squared else X.sum(axis=0)
