"""The compiled IEM loop itself: numba functions behind :func:`iem.core.kernels.optimize`.

Kept apart from :mod:`iem.core.kernels` so that importing iem does not import numba: a process
that runs the torch loop (numba absent, switched off, or its compilation not ready yet; see
:func:`iem.core.kernels.ready`) never pays for it. Every function is cached on disk by numba
(``cache=True``) after its first compilation.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pixelwise(x, whole_num, whole_den, state, shifts, inside, size_f, size_b, upstream, direct, sums):  # pragma: no cover
    # The pixel-wise part of objective_gradient for one image (pixelwise_terms in torch):
    # psi_K's terms are state + shifts, rounded to float32 as the torch loop has them.
    # Writes upstream (C + 1, H, W) and direct (H, W); sums[0], sums[1] = total_f,
    # total_b and sums[2 + c] = the sum of upstream[c]. Rows are contiguous vectors and
    # every sum runs in per-column accumulators, so that the compiler can use SIMD.
    channels, height, width = x.shape
    planes = channels + 1
    zero = np.float32(0.0)
    inv_f = np.empty(width, dtype=np.float32)
    inv_b = np.empty(width, dtype=np.float32)
    weight = np.empty(width, dtype=np.float32)
    err_f = np.empty(width, dtype=np.float32)
    err_b = np.empty(width, dtype=np.float32)
    den_up = np.empty(width, dtype=np.float32)
    accumulators = np.zeros((planes + 2, width))
    # Explicit float32 constants keep the arithmetic in float32, as in torch.
    inv_channels = np.float32(1.0) / np.float32(channels)
    scale_f = inv_channels / size_f
    scale_b = inv_channels / size_b
    for r in range(height):
        fg, den_row, whole_den_row = inside[r], state[channels, r], whole_den[r]
        for s in range(width):
            den_b = np.float32(den_row[s] + shifts[channels])
            den_f = whole_den_row[s] - den_b
            inv_b[s] = np.float32(1.0) / den_b if den_b > zero else zero
            inv_f[s] = np.float32(1.0) / den_f if den_f > zero else zero
            weight[s] = inv_f[s] * scale_f if fg[s] else -inv_b[s] * scale_b
            err_f[s] = zero
            err_b[s] = zero
            den_up[s] = zero
        for c in range(channels):
            x_row, num_row, whole_row = x[c, r], state[c, r], whole_num[c, r]
            up_row, up_sum = upstream[c, r], accumulators[2 + c]
            for s in range(width):
                value = x_row[s]
                num_b = np.float32(num_row[s] + shifts[c])
                res_f = value - (whole_row[s] - num_b) * inv_f[s]
                res_b = value - num_b * inv_b[s]
                err_f[s] += abs(res_f)
                err_b[s] += abs(res_b)
                selected = res_f if fg[s] else res_b
                up = np.float32(np.sign(selected)) * weight[s]
                up_row[s] = up
                up_sum[s] += up
                den_up[s] += up * (selected - value)
        den_row_out, den_sum, direct_row = upstream[channels, r], accumulators[1 + planes], direct[r]
        total_f, total_b = accumulators[0], accumulators[1]
        for s in range(width):
            den_row_out[s] = den_up[s]
            den_sum[s] += den_up[s]
            e_f = err_f[s] * inv_channels
            e_b = err_b[s] * inv_channels
            direct_row[s] = e_f / size_f - e_b / size_b
            total_f[s] += e_f if fg[s] else zero
            total_b[s] += zero if fg[s] else e_b
    for k in range(planes + 2):
        sums[k] = accumulators[k].sum()


@numba.njit(cache=True, nogil=True, inline="always")
def _add_scaled(out, values, scale):  # pragma: no cover
    # out += scale * values on 1-D views: indices from 0 let the compiler vectorise (an
    # offset index ``s + d - w`` would be checked for wraparound at every element).
    for q in range(out.shape[0]):
        out[q] += scale * values[q]

@numba.njit(cache=True, nogil=True, inline="always")
def _add_product(out, values, weights):  # pragma: no cover
    for q in range(out.shape[0]):
        out[q] += values[q] * weights[q]

@numba.njit(cache=True, nogil=True)
def _right_product(y, band_t, w, out):  # pragma: no cover
    # out[c, k] = y[c, k] @ A.T for each row, with band_t[d, j] = A[j, j + d - w].
    channels, height, width = y.shape
    for c in range(channels):
        for k in range(height):
            row = out[c, k]
            row[:] = 0.0
            for d in range(2 * w + 1):
                lo, hi = max(0, w - d), min(width, width + w - d)
                _add_product(row[lo:hi], y[c, k, lo + d - w : hi + d - w], band_t[d, lo:hi])

@numba.njit(cache=True, nogil=True, inline="always")
def _add_scaled_pair(out, first, second, scale):  # pragma: no cover
    for q in range(out.shape[0]):
        out[q] += scale * (first[q] + second[q])

@numba.njit(cache=True, nogil=True, inline="always")
def _add_scaled_pairs5(out, flat, start, stop, step, band, i, w, d, centre):  # pragma: no cover
    # Five passes of _add_scaled_pair (band entries d to d + 4 of row i, and their mirror
    # images) over flat[start:stop] in one: each element of ``out`` is read and written
    # once instead of five times, and the additions keep their order (the same bits). A
    # non-zero ``centre`` starts from ``centre * flat[start:stop]`` (the first pass of a
    # row), zero from ``out``.
    k0, k1, k2, k3, k4 = (w - d) * step, (w - d - 1) * step, (w - d - 2) * step, (w - d - 3) * step, (w - d - 4) * step
    a0, b0, s0 = flat[start - k0 : stop - k0], flat[start + k0 : stop + k0], band[i, d]
    a1, b1, s1 = flat[start - k1 : stop - k1], flat[start + k1 : stop + k1], band[i, d + 1]
    a2, b2, s2 = flat[start - k2 : stop - k2], flat[start + k2 : stop + k2], band[i, d + 2]
    a3, b3, s3 = flat[start - k3 : stop - k3], flat[start + k3 : stop + k3], band[i, d + 3]
    a4, b4, s4 = flat[start - k4 : stop - k4], flat[start + k4 : stop + k4], band[i, d + 4]
    if centre != 0.0:
        source = flat[start:stop]
        for q in range(out.shape[0]):
            out[q] = ((((centre * source[q] + s0 * (a0[q] + b0[q])) + s1 * (a1[q] + b1[q])) + s2 * (a2[q] + b2[q]))
                      + s3 * (a3[q] + b3[q])) + s4 * (a4[q] + b4[q])
    else:
        for q in range(out.shape[0]):
            out[q] = ((((out[q] + s0 * (a0[q] + b0[q])) + s1 * (a1[q] + b1[q])) + s2 * (a2[q] + b2[q]))
                      + s3 * (a3[q] + b3[q])) + s4 * (a4[q] + b4[q])

@numba.njit(cache=True, nogil=True, inline="always")
def _symmetric(band, i, w, height):  # pragma: no cover
    # Whether row i of the band lies inside the matrix and reads the same both ways.
    if i < w or i >= height - w:
        return False
    for d in range(w):
        if band[i, d] != band[i, 2 * w - d]:
            return False
    return True

@numba.njit(cache=True, nogil=True, inline="always")
def _same_row(band, i, j):  # pragma: no cover
    for d in range(band.shape[1]):
        if band[i, d] != band[j, d]:
            return False
    return True

#: Elements of one plane done together in ``_left_product``'s runs of equal rows (a few
#: KiB, so that the output stays in the L1 cache across the band's passes).
_BLOCK = 1024

@numba.njit(cache=True, nogil=True)
def _left_product(y, band, w, out):  # pragma: no cover
    # out[c] = A @ y[c] with band[i, d] = A[i, i + d - w]. A row whose band is symmetric
    # (K's rows away from the border) takes its two rows at equal distance together: half
    # the passes over memory. Consecutive rows with the same symmetric band (all of K's
    # inner rows) are one flat run over the plane, in blocks of _BLOCK elements, band
    # entries five pairs at a time: long loops for the vector units, with each output
    # element computed by the same operations in the same order as row by row.
    channels, height, width = y.shape
    i = 0
    while i < height:
        if not _symmetric(band, i, w, height):
            lo, hi = max(0, w - i), min(2 * w + 1, height + w - i)
            for c in range(channels):
                row = out[c, i]
                row[:] = 0.0
                for d in range(lo, hi):
                    _add_scaled(row, y[c, i + d - w], band[i, d])
            i += 1
            continue
        j = i + 1
        while j < height and _symmetric(band, j, w, height) and _same_row(band, i, j):
            j += 1
        centre = band[i, w]
        for c in range(channels):
            flat, target = y[c].reshape(height * width), out[c].reshape(height * width)
            for start in range(i * width, j * width, _BLOCK):
                stop = min(start + _BLOCK, j * width)
                part, d = target[start:stop], 0
                if w >= 5 and centre != 0.0:
                    _add_scaled_pairs5(part, flat, start, stop, width, band, i, w, 0, centre)
                    d = 5
                else:
                    source = flat[start:stop]
                    for q in range(stop - start):
                        part[q] = centre * source[q]
                while d + 5 <= w:
                    _add_scaled_pairs5(part, flat, start, stop, width, band, i, w, d, 0.0)
                    d += 5
                for d in range(d, w):
                    k = (w - d) * width
                    _add_scaled_pair(part, flat[start - k : stop - k], flat[start + k : stop + k], band[i, d])
        i = j

@numba.njit(cache=True, nogil=True)
def _filter_full(y, rows_r, wr, rows_c_t, wc, tmp, out):  # pragma: no cover
    # out[c] = R @ y[c] @ C.T, both products as sums along the band.
    _right_product(y, rows_c_t, wc, tmp)
    _left_product(tmp, rows_r, wr, out)

@numba.njit(cache=True, nogil=True)
def _filter_state(x, mask, rows_r, wr, rows_c_t, wc, stacked, tmp, state):  # pragma: no cover
    # state = K([X * M, M]) without the epsilon terms, in float64.
    channels, height, width = x.shape
    for r in range(height):
        for s in range(width):
            m = 1.0 if mask[r, s] else 0.0
            for c in range(channels):
                stacked[c, r, s] = x[c, r, s] * m
            stacked[channels, r, s] = m
    _filter_full(stacked, rows_r, wr, rows_c_t, wc, tmp, state)

@numba.njit(cache=True, nogil=True)
def _movable(cur, boundary_only, marks, columns, counts):  # pragma: no cover
    # The pixels Eq. 9 may change, listed per row: the boundary (a 4-neighbour of the other
    # value, or the image's edge) or, without ``boundary_only``, all.
    height, width = cur.shape
    marks[:] = True
    if boundary_only:
        for r in range(1, height - 1):
            row = cur[r]
            mid, left, right, above, below = row[1:-1], row[:-2], row[2:], cur[r - 1, 1:-1], cur[r + 1, 1:-1]
            out = marks[r, 1:-1]
            for q in range(width - 2):
                v = mid[q]
                out[q] = (left[q] != v) | (right[q] != v) | (above[q] != v) | (below[q] != v)
    for r in range(height):
        found = 0
        for s in range(width):
            if marks[r, s]:
                columns[r, found] = s
                found += 1
        counts[r] = found

@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _projected_step(x, cur, direct, offset, coef, left, back_shift, cols_c, wc, columns, counts, moved):  # pragma: no cover
    # Eq. 9 with eta -> infinity: each movable pixel takes the sign of its gradient,
    # ``direct + offset + sum_c X_c (K^T(U)_c - coef_c) + K^T(U)_C``. ``left`` holds
    # R.T @ U; K^T's product by C is done here, for that pixel alone.
    channels, height, width = x.shape
    back = np.empty(channels + 1)
    moved[:] = cur
    for r in range(height):
        for n in range(counts[r]):
            s = columns[r, n]
            lo, hi = max(0, wc - s), min(2 * wc + 1, width + wc - s)
            weights = cols_c[s, lo:hi]
            for c in range(channels + 1):
                taps = left[c, r, s + lo - wc : s + hi - wc]
                total = back_shift[c]
                for q in range(weights.shape[0]):
                    total += weights[q] * taps[q]
                back[c] = total
            g = direct[r, s] + offset + back[channels]
            for c in range(channels):
                g += x[c, r, s] * (back[c] - coef[c])
            if g != 0.0:
                moved[r, s] = g > 0.0

@numba.njit(cache=True, nogil=True)
def _smooth(moved, min_count, exclude_self, counts, out):  # pragma: no cover
    # Majority smoothing: ones in each 3x3 window (zero padding), first down the columns.
    height, width = moved.shape
    for r in range(height):
        row = counts[r]
        for q in range(width):
            row[q] = moved[r, q]
        if r > 0:
            above = moved[r - 1]
            for q in range(width):
                row[q] += above[q]
        if r < height - 1:
            below = moved[r + 1]
            for q in range(width):
                row[q] += below[q]
    for r in range(height):
        row, target, own = counts[r], out[r], moved[r]
        for q in range(width):
            total = row[q]
            if q > 0:
                total += row[q - 1]
            if q < width - 1:
                total += row[q + 1]
            if exclude_self:
                total -= own[q]
            target[q] = total >= min_count

@numba.njit(cache=True, nogil=True)
def _pin(mask, fixed):  # pragma: no cover
    # Pinned pixels back to their mark (iem.core.guidance.pin): fixed[0] foreground, fixed[1] background.
    height, width = mask.shape
    for r in range(height):
        row, fg, bg = mask[r], fixed[0, r], fixed[1, r]
        for q in range(width):
            row[q] = (row[q] or fg[q]) and not bg[q]

@numba.njit(cache=True, nogil=True)
def _differences(a, b):  # pragma: no cover
    # Number of pixels where two masks differ.
    total = 0
    for r in range(a.shape[0]):
        row_a, row_b = a[r], b[r]
        for q in range(row_a.shape[0]):
            total += row_a[q] != row_b[q]
    return total

@numba.njit(cache=True, nogil=True)
def _update_state(x, new, cur, cols_r, wr, cols_c, wc, refilter, state, sums, row):  # pragma: no cover
    # Follow the mask: add or remove the window of K of each changed pixel (or only its
    # sums, when the caller refilters). Changed pixels close together on a row are done
    # as one: their column products are summed in ``row`` first, then spread over the
    # window's rows. Returns the change in the foreground's size.
    channels, height, width = x.shape
    planes = channels + 1
    values = np.empty(planes)
    grown = 0.0
    for r in range(height):
        lo_r, hi_r = max(0, wr - r), min(2 * wr + 1, height + wr - r)
        s = 0
        while s < width:
            if new[r, s] == cur[r, s]:
                s += 1
                continue
            first, stop, last = max(0, s - wc), max(0, s - wc), s
            while s < width and s - last <= 2 * wc + 1:
                if new[r, s] != cur[r, s]:
                    sign = 1.0 if new[r, s] else -1.0
                    grown += sign
                    for c in range(channels):
                        values[c] = sign * x[c, r, s]
                        sums[c] += values[c]
                    values[channels] = sign
                    if not refilter:
                        end = min(width, s + wc + 1)
                        row[:, stop:end] = 0.0
                        stop = max(stop, end)
                        lo, hi = max(0, wc - s), min(2 * wc + 1, width + wc - s)
                        for c in range(planes):
                            _add_scaled(row[c, s + lo - wc : s + hi - wc], cols_c[s, lo:hi], values[c])
                    last = s
                s += 1
            if refilter:
                continue
            for d in range(lo_r, hi_r):
                weight = cols_r[r, d]
                for c in range(planes):
                    _add_scaled(state[c, r + d - wr, first:stop], row[c, first:stop], weight)
    return grown

@numba.njit(cache=True, nogil=True)
def _optimize(
    x, whole_num, whole_den, image_sums, masks, rows_r, cols_r, wr, rows_c_t, cols_c, wc,
    eps, lam, floor, iterations, boundary_only, smoothing, min_count, exclude_self, early_exit,
    fixed, pinned, final, iterations_out,
):  # pragma: no cover
    n, channels, height, width = x.shape
    planes = channels + 1
    pixels = height * width
    state = np.empty((planes, height, width))
    stacked = np.empty((planes, height, width))
    tmp = np.empty((planes, height, width))
    upstream = np.empty((planes, height, width), dtype=np.float32)
    direct = np.empty((height, width), dtype=np.float32)
    left = np.empty((planes, height, width), dtype=np.float32)
    totals = np.empty(planes + 2)
    shifts = np.empty(planes)
    sums = np.empty(channels)
    coef = np.empty(channels)
    back_shift = np.empty(planes)
    moved = np.empty((height, width), dtype=np.bool_)
    marks = np.empty((height, width), dtype=np.bool_)
    movers = np.empty((height, width), dtype=np.int64)
    mover_counts = np.empty(height, dtype=np.int64)
    cols_r32 = cols_r.astype(np.float32)
    window_rows = np.empty((planes, width))
    window_counts = np.empty((height, width), dtype=np.int32)
    # An incremental update costs a window per changed pixel; past this many, refilter.
    refilter_above = pixels * ((2 * wr + 1) + (2 * wc + 1)) // ((2 * wr + 1) * (2 * wc + 1))
    for i in range(n):
        cur = masks[i].copy()
        prev = np.empty_like(cur)
        new = np.empty_like(cur)
        _filter_state(x[i], cur, rows_r, wr, rows_c_t, wc, stacked, tmp, state)
        size = 0.0
        sums[:] = 0.0
        for r in range(height):
            for s in range(width):
                if cur[r, s]:
                    size += 1.0
                    for c in range(channels):
                        sums[c] += x[i, c, r, s]
        have_prev = False
        result = cur
        done_at = iterations
        for t in range(1, iterations + 1):
            for c in range(channels):
                shifts[c] = eps * sums[c]
            shifts[channels] = eps * size
            size_f = np.float32(max(size, floor))
            size_b = np.float32(max(pixels - size, floor))
            _pixelwise(x[i], whole_num[i], whole_den, state, shifts, cur, size_f, size_b, upstream, direct, totals)
            # The normalisers' derivative and the diversity term (as in objective_gradient).
            offset = 0.0
            if pixels - size > floor:
                offset += np.float32(totals[1]) / (size_b * size_b)
            if size > floor:
                offset -= np.float32(totals[0]) / (size_f * size_f)
            coef[:] = 0.0
            if lam != 0.0:
                for c in range(channels):
                    mu_f = sums[c] / max(size, 1.0)
                    mu_b = (image_sums[i, c] - sums[c]) / max(pixels - size, 1.0)
                    coef[c] = 2.0 * lam * (mu_b - mu_f)
                    offset -= lam * (mu_f * mu_f - mu_b * mu_b)
            back_shift[:] = eps * totals[2:]
            _movable(cur, boundary_only, marks, movers, mover_counts)
            _left_product(upstream, cols_r32, wr, left)
            _projected_step(x[i], cur, direct, offset, coef, left, back_shift, cols_c, wc, movers, mover_counts, moved)
            if smoothing:
                _smooth(moved, min_count, exclude_self, window_counts, new)
            else:
                new[:] = moved
            if pinned:
                _pin(new, fixed[i])
            changed = _differences(new, cur)
            cycle = have_prev and _differences(new, prev) == 0
            if early_exit and (changed == 0 or cycle):
                # A fixed point, or a 2-cycle whose phase after the last iteration is read off.
                result = new if changed == 0 or (iterations - t) % 2 == 0 else cur
                done_at = t
                break
            refilter = changed > refilter_above
            size += _update_state(x[i], new, cur, cols_r, wr, cols_c, wc, refilter, state, sums, window_rows)
            if refilter:
                _filter_state(x[i], new, rows_r, wr, rows_c_t, wc, stacked, tmp, state)
            prev, cur, new = cur, new, prev
            have_prev = True
            result = cur
        final[i] = result
        iterations_out[i] = done_at
