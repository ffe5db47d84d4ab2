/*
 * Logit-space row kernels for ONE instruction set and ONE storage type.
 *
 * fd_logits.h includes this file twice per instruction set: FDL_T double
 * (FDL_TS f64) and FDL_T float (FDL_TS f32). Sums, losses and gradients are
 * computed in double and rounded once when stored; float32 rows take their
 * max and their exps in float lanes (fdl_expf_nonpos, <= 1 float ulp), as the
 * float32 divergence kernels take their logs, and widen each exp to double
 * before it is summed. Semantics: the "Logit space" section of
 * fastdiv/_backends/__init__.py.
 *
 * Row layout: unit inner stride; w is NULL or one uint8 per element (0 =
 * masked). The max is tracked with NaN explicitly (`x > m ? x : m` drops NaN).
 * logsumexp, log_softmax, softmax and the class-index cross-entropy read the
 * logits ONCE for the log-sum-exp (online_lse: block max from memory, then the
 * block's exps from L1); a gradient or softmax comes from the exps stored on
 * that pass (in the gradient row itself, or softmax's scratch row), so the
 * logits are never read a second time
 * (log_softmax re-reads them, from L2, to write z - max - log S).
 * kl_divergence_logits and the probability-target cross-entropy take the
 * plain two-pass form (row max, then sums; the row re-read from L2).
 * `masked`, `weighted` and similar int parameters of the FD_INLINE bodies
 * are compile-time constants after inlining: each combination is its own
 * vectorised loop. No include guard on purpose.
 */

#define FDL_NT(name) FD_CAT(FD_N(name), FDL_TS)

#if FDL_T_IS_DOUBLE
#define FDL_INT int64_t
#define FDL_EXP FD_N(fdl_exp_kernel_d)
#else
#define FDL_INT int32_t
#define FDL_EXP FD_N(fdl_exp_nonpos_f32_d)
#endif

/* ---------------------------------------------------------------- pass 1 */

/*
 * Max of the kept elements of z (kept: w[i] != 0 when masked, b[i] != 0 when
 * weighted): NaN if a kept element is NaN, -inf if none is kept.
 * *count gets the number of kept elements.
 */
FD_INLINE double FDL_NT(row_max)(const int masked, const int weighted, const FDL_T *z,
                                  const FDL_T *b, const unsigned char *w, ptrdiff_t n,
                                  double *count)
{
    /* in the storage type: a float row keeps 16 lanes (the max of floats is a float) */
    FDL_T m = (FDL_T)-FD_INF_D;
    FDL_INT nan = 0, kept_count = 0;
    FD_PRAGMA_SIMD(reduction(max : m) reduction(| : nan) reduction(+ : kept_count))
    for (ptrdiff_t i = 0; i < n; i++) {
        const FDL_T x = z[i];
        FDL_INT keep = 1;
        if (masked)
            keep = w[i] != 0;
        if (weighted)
            keep &= (FDL_INT)(b[i] != 0);
        const FDL_T v = keep ? x : (FDL_T)-FD_INF_D;
        m = v > m ? v : m;
        nan |= keep & (FDL_INT)(x != x);
        kept_count += keep;
    }
    *count = (double)kept_count;
    return nan ? FD_NAN_D : (double)m;
}

/* Max of two rows at once (kl_divergence_logits), divided by t, over the kept elements. */
FD_INLINE void FDL_NT(row_max2)(const int masked, const FDL_T *a, const FDL_T *b, double t,
                                const unsigned char *w, ptrdiff_t n, double *ma, double *mb,
                                double *count)
{
    double m1 = -FD_INF_D, m2 = -FD_INF_D, kept_count = 0.0;
    int64_t nan = 0;
    FD_PRAGMA_SIMD(reduction(max : m1, m2) reduction(| : nan) reduction(+ : kept_count))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double x = (double)a[i] / t, y = (double)b[i] / t;
        int64_t keep = 1;
        if (masked)
            keep = w[i] != 0;
        const double vx = keep ? x : -FD_INF_D, vy = keep ? y : -FD_INF_D;
        m1 = vx > m1 ? vx : m1;
        m2 = vy > m2 ? vy : m2;
        nan |= keep & ((int64_t)(x != x) | (int64_t)(y != y));
        kept_count += keep ? 1.0 : 0.0;
    }
    *ma = nan ? FD_NAN_D : m1;
    *mb = nan ? FD_NAN_D : m2;
    *count = kept_count;
}

/* ------------------------------------------------- one-pass statistics */

/*
 * Sums of one block against the running max m (finite): head (weights of
 * the kept elements equal to m), tail (weighted exp(z - m) of the others),
 * and for smoothing sum(m - z) over the kept elements other than index skip.
 * store: each exp (0 at masked elements) goes to exps, in the storage type
 * (a float32 row's exps are floats: stored exactly).
 */
FD_INLINE void FDL_NT(block_sums)(const int masked, const int weighted, const int store,
                                  const int smooth, const FDL_T *a, const FDL_T *b,
                                  const unsigned char *w, ptrdiff_t n, double m, ptrdiff_t skip,
                                  FDL_T *exps, double *head_out, double *tail_out,
                                  double *qz_out)
{
    double head = 0.0, tail = 0.0, qz = 0.0;
    FDL_INT heads = 0;
#if !FDL_T_IS_DOUBLE
    const float mf = (float)m;              /* a float32 logit: exact */
#endif
    FD_PRAGMA_SIMD(reduction(+ : head, tail, qz, heads))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double x = (double)a[i];
#if FDL_T_IS_DOUBLE
        const double e = FDL_EXP(x - m);
        const int at_max = x == m;
#else
        /* float32: the exp in float arithmetic (16 lanes), summed in double; the
         * rounding of a[i] - m in float moves a term by at most |d| e^d 2^-24 */
        const float ef = FD_N(fdl_expf_nonpos)(a[i] - mf);
        const double e = (double)ef;
        const int at_max = a[i] == mf;
#endif
        int keep = 1;
        double weight = 1.0;
        if (masked)
            keep = w[i] != 0;
        if (weighted) {
            weight = (double)b[i];
            keep &= weight != 0;
        }
        if (store)
            exps[i] = keep ? (FDL_T)e : (FDL_T)0;    /* a float's e is its float exp, exactly */
#if !FDL_T_IS_DOUBLE
        if (!weighted) {     /* select in float lanes, then widen: half the double work */
            heads += keep & at_max;
            tail += (double)((keep & !at_max) ? ef : 0.0f);
        } else
#endif
        {
            head += (keep & at_max) ? weight : 0.0;
            tail += (keep & !at_max) ? weight * e : 0.0;
        }
        if (smooth)
            qz += (keep & (i != skip)) ? m - x : 0.0;
    }
    *head_out = head + (double)heads;
    *tail_out = tail;
    *qz_out = qz;
}

/*
 * The log-sum-exp statistics of a row in ONE pass over memory, block by
 * block: the max of a block (read from memory), then its exps against the
 * running max (re-read from L1). When a block raises the max from m to m',
 * the sums so far are rescaled by exp(m - m') (terms that sat at m join the
 * tail), so at the end head and tail are those of the row max M. For rows
 * that fit in L2 this is the same work as the two-pass form, but memory and
 * arithmetic overlap instead of alternating.
 *
 * Returns the row max M: NaN or +inf as soon as a block shows one (the sums
 * are then meaningless), -inf when nothing finite is kept. *count gets the
 * number of kept elements; with smooth, *qz gets sum(M - z) over the kept
 * elements other than index skip (+inf when one of them is -inf).
 * store: exps[i] gets exp(z_i - m_b) (0 at masked elements) with m_b the
 * running max when its block was read, stored at block_max[block]; the final
 * value is exps[i] * exp(m_b - M) (fdl_block_factor).
 */
FD_INLINE double FDL_NT(online_lse)(const int masked, const int weighted, const int store,
                                    const int smooth, const FDL_T *a, const FDL_T *b,
                                    const unsigned char *w, ptrdiff_t n, ptrdiff_t skip,
                                    FDL_T *exps, double *block_max, double *head_out,
                                    double *tail_out, double *count_out, double *qz_out)
{
    double m = -FD_INF_D, head = 0.0, tail = 0.0, count = 0.0, qz = 0.0, others = 0.0;
    int pending_inf = 0;
    ptrdiff_t block = 0;
    *head_out = *tail_out = *qz_out = 0.0;
    for (ptrdiff_t start = 0; start < n; start += FDL_BLOCK, block++) {
        const ptrdiff_t len = (n - start < FDL_BLOCK) ? n - start : FDL_BLOCK;
        const FDL_T *ab = a + start;
        const FDL_T *bb = weighted ? b + start : 0;
        const unsigned char *wb = masked ? w + start : 0;
        const ptrdiff_t local_skip = skip - start;
        const double skipped = (local_skip >= 0 && local_skip < len) ? 1.0 : 0.0;
        double kept, hb, tb, qb;
        const double mb = FDL_NT(row_max)(masked, weighted, ab, bb, wb, len, &kept);
        count += kept;
        if (mb != mb || mb == FD_INF_D) {
            *count_out = count;
            return mb;
        }
        if (mb > m) {
            if (m > -FD_INF_D) {
                tail = (tail + head) * exp(m - mb);
                if (smooth)
                    qz += others * (mb - m);
            }
            head = 0.0;
            m = mb;
        }
        if (store)
            block_max[block] = m;
        if (m == -FD_INF_D) {       /* nothing finite so far: the block adds no exp */
            if (store)
                for (ptrdiff_t i = 0; i < len; i++)
                    exps[start + i] = 0;
            if (smooth && kept - skipped > 0)
                pending_inf = 1;    /* a -inf logit with q = eps / C > 0 */
            continue;
        }
        FDL_NT(block_sums)(masked, weighted, store, smooth, ab, bb, wb, len, m, local_skip,
                           store ? exps + start : 0, &hb, &tb, &qb);
        head += hb;
        tail += tb;
        if (smooth) {
            qz += qb;
            others += kept - skipped;
        }
    }
    *head_out = head;
    *tail_out = tail;
    *count_out = count;
    *qz_out = pending_inf ? FD_INF_D : qz;
    return m;
}

/* ------------------------------------------------------------- logsumexp */

/*
 * The row when its max m is not finite (+inf, -inf, NaN, nothing kept):
 * log|sum(b exp(a))| in plain IEEE arithmetic, sign its sign.
 */
static FD_TARGET void FDL_NT(lse_plain)(const FDL_T *a, const FDL_T *b, const unsigned char *w,
                                        ptrdiff_t n, double *out, double *sign)
{
    double total = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        if ((w && !w[i]) || (b && b[i] == 0))
            continue;
        const double e = exp((double)a[i]);
        total += b ? (double)b[i] * e : e;
    }
    *out = log(fabs(total));
    *sign = total > 0 ? 1.0 : (total < 0 ? -1.0 : (total == 0 ? 0.0 : total));
}

/* stats = {max, head, tail} of the row (online_lse); the max not finite
 * when NaN, +inf or nothing finite was found. */
static FD_TARGET void FDL_NT(lse_stats)(const void *a, const void *b, const unsigned char *w,
                                        ptrdiff_t n, double *stats)
{
    const FDL_T *at = (const FDL_T *)a, *bt = (const FDL_T *)b;
    double count, qz;
    if (w && b)
        stats[0] = FDL_NT(online_lse)(1, 1, 0, 0, at, bt, w, n, -1, 0, 0, &stats[1],
                                      &stats[2], &count, &qz);
    else if (w)
        stats[0] = FDL_NT(online_lse)(1, 0, 0, 0, at, bt, w, n, -1, 0, 0, &stats[1],
                                      &stats[2], &count, &qz);
    else if (b)
        stats[0] = FDL_NT(online_lse)(0, 1, 0, 0, at, bt, w, n, -1, 0, 0, &stats[1],
                                      &stats[2], &count, &qz);
    else
        stats[0] = FDL_NT(online_lse)(0, 0, 0, 0, at, bt, w, n, -1, 0, 0, &stats[1],
                                      &stats[2], &count, &qz);
}

/* The result of a row from its stats (fdl_lse_finish), or, when its max is
 * not finite, from the plain IEEE sum over the whole row. */
static FD_TARGET void FDL_NT(lse_from_stats)(const void *a, const void *b,
                                             const unsigned char *w, ptrdiff_t n,
                                             const double *stats, int want_sign, double *out,
                                             double *sign)
{
    double s;
    if (fdl_finite(stats[0]))
        fdl_lse_finish(stats[0], stats[1], stats[2], b != 0, out, &s);
    else
        FDL_NT(lse_plain)((const FDL_T *)a, (const FDL_T *)b, w, n, out, &s);
    if (want_sign)
        *sign = s;
    else if (s < 0)
        *out = FD_NAN_D;
}

static FD_TARGET void FDL_NT(logsumexp)(const void *a, const void *b, const unsigned char *w,
                                        ptrdiff_t n, int want_sign, double *out, double *sign)
{
    double stats[3];
    FDL_NT(lse_stats)(a, b, w, n, stats);
    FDL_NT(lse_from_stats)(a, b, w, n, stats, want_sign, out, sign);
}

/* ------------------------------------------------- log_softmax and softmax */

static FD_TARGET void FDL_NT(log_softmax)(const void *z, void *out, ptrdiff_t n)
{
    const FDL_T *zt = (const FDL_T *)z;
    FDL_T *o = (FDL_T *)out;
    double count, head, tail, qz, shift = 0.0;
    double m = FDL_NT(online_lse)(0, 0, 0, 0, zt, 0, 0, n, -1, 0, 0, &head, &tail, &count,
                                  &qz);
    if (m == FD_INF_D)          /* a later NaN wins over +inf */
        m = FDL_NT(row_max)(0, 0, zt, 0, 0, n, &count);
    if (fdl_finite(m))
        shift = fdl_log_sum(head, tail);
    /* finite m: (z - m) - log S; otherwise z - m is SciPy's z - log(sum(exp(z))) */
    FD_PRAGMA_SIMD()
    for (ptrdiff_t i = 0; i < n; i++)
        o[i] = (FDL_T)(((double)zt[i] - m) - shift);
}

/* ebuf: n + n / FDL_BLOCK + 1 doubles: the exps (in the storage type; out
 * may be z, so they cannot go to out), then the block maxima. */
static FD_TARGET void FDL_NT(softmax)(const void *z, void *out, ptrdiff_t n, double *ebuf)
{
    const FDL_T *zt = (const FDL_T *)z;
    FDL_T *o = (FDL_T *)out;
    FDL_T *exps = (FDL_T *)ebuf;
    double *block_max = ebuf + n;
    double count, head, tail, qz;
    const double m = FDL_NT(online_lse)(0, 0, 1, 0, zt, 0, 0, n, -1, exps, block_max, &head,
                                        &tail, &count, &qz);
    if (!fdl_finite(m)) {
        for (ptrdiff_t i = 0; i < n; i++)
            o[i] = (FDL_T)FD_NAN_D;
        return;
    }
    const double total = head + tail;
    ptrdiff_t block = 0;
    for (ptrdiff_t start = 0; start < n; start += FDL_BLOCK, block++) {
        const ptrdiff_t len = (n - start < FDL_BLOCK) ? n - start : FDL_BLOCK;
        /* e / total as the reference (and SciPy) divides; f is 1 in the max's block */
        const double f = fdl_block_factor(block_max, block, m);
        FD_PRAGMA_SIMD()
        for (ptrdiff_t i = start; i < start + len; i++)
            o[i] = (FDL_T)(((double)exps[i] * f) / total);
    }
}

/* ------------------------------------------------------- cross-entropies */

/* Gradient row of a row whose loss is NaN (max not finite) or 0 (ignored):
 * value on kept elements, 0 on masked ones. */
static FD_TARGET void FDL_NT(fill_grad)(FDL_T *grad, const unsigned char *w, ptrdiff_t n,
                                        double value)
{
    for (ptrdiff_t i = 0; i < n; i++)
        grad[i] = (FDL_T)((w && !w[i]) ? 0.0 : value);
}

/*
 * Pass 2 of the cross-entropies: exp(z - m) over the kept elements (stored
 * in ebuf when store, 0 at masked ones), split into head (count at the max)
 * and tail. probs: the target is q = (1 - eps) p + eps / C (kept elements),
 * and *qz gets sum(q (m - z)) over q != 0, *qsum sum(q). Class indices: *qz
 * gets sum(m - z) over the kept elements other than `skip` (for smoothing).
 */
FD_INLINE void FDL_NT(ce_sums)(const int masked, const int probs, const int smooth,
                               const int store, const FDL_T *z, const FDL_T *p,
                               const unsigned char *w, ptrdiff_t n, double m, double keep_p,
                               double uniform, ptrdiff_t skip, double *ebuf, double *head_out,
                               double *tail_out, double *qz_out, double *qsum_out)
{
    double head = 0.0, tail = 0.0, qz = 0.0, qsum = 0.0, qcomp = 0.0;
#if !FDL_T_IS_DOUBLE
    const float mf = (float)m;              /* a float32 logit: exact */
#endif
    FD_PRAGMA_SIMD(reduction(+ : head, tail, qz, qsum, qcomp))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double x = (double)z[i];
#if FDL_T_IS_DOUBLE
        const double e = FDL_EXP(x - m);
#else
        /* float32: the exp in float lanes, as in block_sums */
        const double e = (double)FD_N(fdl_expf_nonpos)(z[i] - mf);
#endif
        const int keep = masked ? w[i] != 0 : 1;
        const int at_max = x == m;
        if (store)
            ebuf[i] = keep ? e : 0.0;
        head += (keep & at_max) ? 1.0 : 0.0;
        tail += (keep & !at_max) ? e : 0.0;
        if (probs) {
            const double q = keep_p * (double)p[i] + uniform;
            const double qk = keep ? q : 0.0;   /* sum(q) feeds every gradient: Neumaier */
            const double t = qsum + qk;
            qcomp += (fabs(qsum) >= fabs(qk)) ? ((qsum - t) + qk) : ((qk - t) + qsum);
            qsum = t;
            qz += (keep & (q != 0)) ? q * (m - x) : 0.0;
        } else if (smooth) {
            qz += (keep & (i != skip)) ? m - x : 0.0;
        }
    }
    *head_out = head;
    *tail_out = tail;
    *qz_out = qz;
    *qsum_out = (qsum - qsum == 0.0) ? qsum + qcomp : qsum;
}

/* ce_sums with its probs / smooth variant chosen (each its own compiled loop). */
FD_INLINE void FDL_NT(ce_sums_for)(const int masked, const int probs, int smooth,
                                   const int store, const FDL_T *z, const FDL_T *p,
                                   const unsigned char *w, ptrdiff_t n, double m,
                                   double keep_p, double uniform, ptrdiff_t target, double *ebuf,
                                   double *head, double *tail, double *qz, double *qsum)
{
    if (probs)
        FDL_NT(ce_sums)(masked, 1, 0, store, z, p, w, n, m, keep_p, uniform, -1, ebuf, head,
                        tail, qz, qsum);
    else if (smooth)
        FDL_NT(ce_sums)(masked, 0, 1, store, z, p, w, n, m, keep_p, uniform, target, ebuf, head,
                        tail, qz, qsum);
    else
        FDL_NT(ce_sums)(masked, 0, 0, store, z, p, w, n, m, keep_p, uniform, target, ebuf, head,
                        tail, qz, qsum);
}

/* grad = qsum * e / total - q on kept elements (q from p for probs, else uniform), 0 on
 * masked ones; in the reference's order of operations for probs (qsum may be large). */
FD_INLINE void FDL_NT(ce_grad)(const int masked, const int probs, const FDL_T *p,
                               const unsigned char *w, ptrdiff_t n, const double *ebuf,
                               double qsum, double total, double keep_p, double uniform,
                               FDL_T *grad)
{
    const double scale = 1.0 / total;    /* class indices: qsum == 1 */
    FD_PRAGMA_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) {
        const double q = probs ? keep_p * (double)p[i] + uniform : uniform;
        const double g = (probs ? (qsum * ebuf[i]) / total : ebuf[i] * scale) - q;
        grad[i] = (FDL_T)((masked && !w[i]) ? 0.0 : g);
    }
}

FD_INLINE void FDL_NT(sce_body)(const int masked, const int probs, const FDL_T *z,
                                const FDL_T *p, ptrdiff_t target, double eps,
                                const unsigned char *w, ptrdiff_t n, double *loss, FDL_T *grad,
                                double *ebuf)
{
    double kept, head, tail, qz, qsum;
    if (!probs && target < 0) {             /* ignored row: its logits are not read */
        *loss = 0.0;
        if (grad)
            FDL_NT(fill_grad)(grad, 0, n, 0.0);
        return;
    }
    const double m = FDL_NT(row_max)(masked, 0, z, 0, w, n, &kept);
    if (kept == 0) {                         /* probs only: a class index is kept */
        *loss = 0.0;
        if (grad)
            FDL_NT(fill_grad)(grad, 0, n, 0.0);
        return;
    }
    if (!fdl_finite(m)) {
        *loss = FD_NAN_D;
        if (grad)
            FDL_NT(fill_grad)(grad, masked ? w : 0, n, FD_NAN_D);
        return;
    }
    const double uniform = eps / kept, keep_p = 1.0 - eps;
    const int smooth = eps != 0;
    if (grad)
        FDL_NT(ce_sums_for)(masked, probs, smooth, 1, z, p, w, n, m, keep_p, uniform, target,
                            ebuf, &head, &tail, &qz, &qsum);
    else
        FDL_NT(ce_sums_for)(masked, probs, smooth, 0, z, p, w, n, m, keep_p, uniform, target,
                            ebuf, &head, &tail, &qz, &qsum);
    const double log_sum = fdl_log_sum(head, tail);
    double q_target = 0.0;
    if (probs) {
        *loss = qz + qsum * log_sum;
    } else {
        q_target = keep_p + uniform;     /* the reference's (1 - eps) * 1 + eps / C */
        *loss = q_target * (m - (double)z[target]) + (smooth ? uniform * qz : 0.0) + log_sum;
        qsum = 1.0;
    }
    if (grad) {
        const double total = head + tail, scale = 1.0 / total;
        const double e_target = probs ? 0.0 : ebuf[target];   /* ebuf may be grad itself */
        if (probs)
            FDL_NT(ce_grad)(masked, 1, p, w, n, ebuf, qsum, total, keep_p, uniform, grad);
        else
            FDL_NT(ce_grad)(masked, 0, p, w, n, ebuf, 1.0, total, keep_p,
                            smooth ? uniform : 0.0, grad);
        if (!probs)
            grad[target] = (FDL_T)(e_target * scale - q_target);
    }
}

/* Class indices: one pass over the logits for the loss (online_lse), which
 * stores the exps in grad itself, one over grad to turn them into the
 * gradient. block_max: n / FDL_BLOCK + 1 doubles. */
FD_INLINE void FDL_NT(sce_index_body)(const int masked, const int store, const int smooth,
                                      const FDL_T *z, ptrdiff_t target, double eps,
                                      const unsigned char *w, ptrdiff_t n, double *loss,
                                      FDL_T *grad, double *block_max)
{
    double head, tail, kept, qz;
    if (target < 0) {                       /* ignored row: its logits are not read */
        *loss = 0.0;
        if (store)
            FDL_NT(fill_grad)(grad, 0, n, 0.0);
        return;
    }
    const double m = FDL_NT(online_lse)(masked, 0, store, smooth, z, 0, w, n, target, grad,
                                        block_max, &head, &tail, &kept, &qz);
    if (!fdl_finite(m)) {                   /* the target is kept: never an empty row */
        *loss = FD_NAN_D;
        if (store)
            FDL_NT(fill_grad)(grad, masked ? w : 0, n, FD_NAN_D);
        return;
    }
    const double uniform = smooth ? eps / kept : 0.0;
    const double q_target = (1.0 - eps) + eps / kept;  /* the reference's (1 - eps) * 1 + eps / C */
    *loss = q_target * (m - (double)z[target]) + (smooth ? uniform * qz : 0.0)
            + fdl_log_sum(head, tail);
    if (!store)
        return;
    const double total = head + tail;
    const double e_target =
        (double)grad[target] * fdl_block_factor(block_max, target / FDL_BLOCK, m);
    ptrdiff_t block = 0;
    for (ptrdiff_t start = 0; start < n; start += FDL_BLOCK, block++) {
        const ptrdiff_t len = (n - start < FDL_BLOCK) ? n - start : FDL_BLOCK;
        const double scale = fdl_block_factor(block_max, block, m) / total;
        FD_PRAGMA_SIMD()
        for (ptrdiff_t i = start; i < start + len; i++) {
            const double g = (double)grad[i] * scale - uniform;
            grad[i] = (FDL_T)((masked && !w[i]) ? 0.0 : g);
        }
    }
    grad[target] = (FDL_T)(e_target / total - q_target);
}

static FD_TARGET void FDL_NT(softmax_cross_entropy)(const void *z, ptrdiff_t target, double eps,
                                                    const unsigned char *w, ptrdiff_t n,
                                                    double *loss, void *grad, double *ebuf)
{
    const FDL_T *zt = (const FDL_T *)z;
    FDL_T *g = (FDL_T *)grad;
    const int smooth = eps != 0;
    /* every (mask, gradient, smoothing) combination is its own loop */
    if (w) {
        if (g)
            smooth ? FDL_NT(sce_index_body)(1, 1, 1, zt, target, eps, w, n, loss, g, ebuf)
                   : FDL_NT(sce_index_body)(1, 1, 0, zt, target, eps, w, n, loss, g, ebuf);
        else
            smooth ? FDL_NT(sce_index_body)(1, 0, 1, zt, target, eps, w, n, loss, g, ebuf)
                   : FDL_NT(sce_index_body)(1, 0, 0, zt, target, eps, w, n, loss, g, ebuf);
    } else {
        if (g)
            smooth ? FDL_NT(sce_index_body)(0, 1, 1, zt, target, eps, w, n, loss, g, ebuf)
                   : FDL_NT(sce_index_body)(0, 1, 0, zt, target, eps, w, n, loss, g, ebuf);
        else
            smooth ? FDL_NT(sce_index_body)(0, 0, 1, zt, target, eps, w, n, loss, g, ebuf)
                   : FDL_NT(sce_index_body)(0, 0, 0, zt, target, eps, w, n, loss, g, ebuf);
    }
}

static FD_TARGET void FDL_NT(softmax_cross_entropy_probs)(const void *z, const void *p,
                                                          double eps, const unsigned char *w,
                                                          ptrdiff_t n, double *loss, void *grad,
                                                          double *ebuf)
{
    if (w)
        FDL_NT(sce_body)(1, 1, (const FDL_T *)z, (const FDL_T *)p, 0, eps, w, n, loss,
                         (FDL_T *)grad, ebuf);
    else
        FDL_NT(sce_body)(0, 1, (const FDL_T *)z, (const FDL_T *)p, 0, eps, w, n, loss,
                         (FDL_T *)grad, ebuf);
}

/* ------------------------------------------------------ KL from logits */

FD_INLINE void FDL_NT(kl_body)(const int masked, const int store, const FDL_T *a,
                               const FDL_T *b, double temp, const unsigned char *w,
                               ptrdiff_t n, double *loss, FDL_T *grad, double *ebuf)
{
    double mx, my, kept;
    FDL_NT(row_max2)(masked, a, b, temp, w, n, &mx, &my, &kept);
    if (kept == 0) {
        *loss = 0.0;
        if (grad)
            FDL_NT(fill_grad)(grad, 0, n, 0.0);
        return;
    }
    if (!fdl_finite(mx) || !fdl_finite(my)) {
        *loss = FD_NAN_D;
        if (grad)
            FDL_NT(fill_grad)(grad, masked ? w : 0, n, FD_NAN_D);
        return;
    }
    double hx = 0.0, tx = 0.0, hy = 0.0, ty = 0.0, cross = 0.0;
    double *ex_buf = ebuf, *ey_buf = ebuf + n;
    FD_PRAGMA_SIMD(reduction(+ : hx, tx, hy, ty, cross))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double dx = (double)a[i] / temp - mx, dy = (double)b[i] / temp - my;
        const double ex = FDL_EXP(dx), ey = FDL_EXP(dy);
        const int keep = masked ? w[i] != 0 : 1;
        if (store) {
            ex_buf[i] = keep ? ex : 0.0;
            ey_buf[i] = keep ? ey : 0.0;
        }
        hx += (keep & (dx == 0)) ? 1.0 : 0.0;
        tx += (keep & (dx != 0)) ? ex : 0.0;
        hy += (keep & (dy == 0)) ? 1.0 : 0.0;
        ty += (keep & (dy != 0)) ? ey : 0.0;
        cross += (keep & (ex != 0)) ? ex * (dx - dy) : 0.0;   /* 0 log 0 = 0 */
    }
    const double sx = hx + tx, sy = hy + ty;
    double kl = cross / sx + (fdl_log_sum(hy, ty) - fdl_log_sum(hx, tx));
    *loss = kl < 0 ? 0.0 : kl;    /* rounding may dip below 0; NaN stays */
    if (store) {
        FD_PRAGMA_SIMD()
        for (ptrdiff_t i = 0; i < n; i++)
            grad[i] = (FDL_T)((ey_buf[i] / sy - ex_buf[i] / sx) / temp);
    }
}

static FD_TARGET void FDL_NT(kl_divergence_logits)(const void *a, const void *b, double temp,
                                                   const unsigned char *w, ptrdiff_t n,
                                                   double *loss, void *grad, double *ebuf)
{
    const FDL_T *at = (const FDL_T *)a, *bt = (const FDL_T *)b;
    FDL_T *g = (FDL_T *)grad;
    if (w && g)
        FDL_NT(kl_body)(1, 1, at, bt, temp, w, n, loss, g, ebuf);
    else if (w)
        FDL_NT(kl_body)(1, 0, at, bt, temp, w, n, loss, g, ebuf);
    else if (g)
        FDL_NT(kl_body)(0, 1, at, bt, temp, w, n, loss, g, ebuf);
    else
        FDL_NT(kl_body)(0, 0, at, bt, temp, w, n, loss, g, ebuf);
}

/* ------------------------------------------------ binary cross-entropies */

FD_INLINE void FDL_NT(bce_body)(const int masked, const FDL_T *p, const FDL_T *q,
                                const unsigned char *w, ptrdiff_t n, double *out)
{
    double total = 0.0;
    FD_PRAGMA_SIMD(reduction(+ : total))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double x = (double)p[i], y = (double)q[i];
        const double not_x = 1.0 - x;
        const int y_number = y == y;
        const double pos = ((x == 0) & y_number) ? 0.0 : -(x * FD_N(fd_log_d)(y));
        const double neg = ((not_x == 0) & y_number) ? 0.0 : -(not_x * FD_N(fdl_log1p_d)(-y));
        const int keep = masked ? w[i] != 0 : 1;
        total += keep ? pos + neg : 0.0;
    }
    *out = total;
}

static FD_TARGET void FDL_NT(binary_cross_entropy)(const void *p, const void *q,
                                                   const unsigned char *w, ptrdiff_t n,
                                                   double *out)
{
    if (w)
        FDL_NT(bce_body)(1, (const FDL_T *)p, (const FDL_T *)q, w, n, out);
    else
        FDL_NT(bce_body)(0, (const FDL_T *)p, (const FDL_T *)q, w, n, out);
}

/*
 * softplus(z) = max(z, 0) + log1p(exp(-|z|)) and softplus(-z) share the
 * log1p term; 1 + exp(-|z|) lies in [1, 2], where the plain log is exact
 * enough with the rounding correction of fdl_log1p_d.
 */
FD_INLINE void FDL_NT(bcel_body)(const int masked, const int weighted, const FDL_T *z,
                                 const FDL_T *t, const FDL_T *pw, const unsigned char *w,
                                 ptrdiff_t n, double *out)
{
    double total = 0.0;
    FD_PRAGMA_SIMD(reduction(+ : total))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double x = (double)z[i], target = (double)t[i];
        const double u = FD_N(fdl_exp_nonpos_d)(-fabs(x));        /* in [0, 1]; NaN for NaN */
        const double v = 1.0 + u;
        const double l = FD_N(fd_log_normal_d)(v) + (u - (v - 1.0)) / v;
        const int number = x == x;
        const double sp_pos = (x > 0 ? x : 0.0) + l;       /* softplus(x), NaN fixed below */
        const double sp_neg = (x < 0 ? -x : 0.0) + l;      /* softplus(-x) */
        const double positive = weighted ? (double)pw[i] * target : target;
        const double negative = 1.0 - target;
        double term = (((positive == 0) & number) ? 0.0 : positive * sp_neg)
                      + (((negative == 0) & number) ? 0.0 : negative * sp_pos);
        term = number ? term : x;
        const int keep = masked ? w[i] != 0 : 1;
        total += keep ? term : 0.0;
    }
    *out = total;
}

static FD_TARGET void FDL_NT(binary_cross_entropy_with_logits)(const void *z, const void *t,
                                                               const void *pw,
                                                               const unsigned char *w,
                                                               ptrdiff_t n, double *out)
{
    const FDL_T *zt = (const FDL_T *)z, *tt = (const FDL_T *)t, *wt = (const FDL_T *)pw;
    if (w && pw)
        FDL_NT(bcel_body)(1, 1, zt, tt, wt, w, n, out);
    else if (w)
        FDL_NT(bcel_body)(1, 0, zt, tt, wt, w, n, out);
    else if (pw)
        FDL_NT(bcel_body)(0, 1, zt, tt, wt, w, n, out);
    else
        FDL_NT(bcel_body)(0, 0, zt, tt, wt, w, n, out);
}

/* The vector exp itself, for the tests: fd_exp_d for double data; for float
 * data the float32 kernels' exp of x <= 0 (garbage for x > 0). */
static FD_TARGET void FDL_NT(exp_map)(const void *x, void *out, ptrdiff_t n)
{
    const FDL_T *xt = (const FDL_T *)x;
    FDL_T *o = (FDL_T *)out;
    FD_PRAGMA_SIMD()
    for (ptrdiff_t i = 0; i < n; i++)
#if FDL_T_IS_DOUBLE
        o[i] = FD_N(fd_exp_d)(xt[i]);
#else
        o[i] = FD_N(fdl_expf_nonpos)(xt[i]);
#endif
}

static const fdl_kernel_set FDL_NT(logit_set) = {
    FDL_NT(logsumexp),
    FDL_NT(lse_stats),
    FDL_NT(lse_from_stats),
    FDL_NT(log_softmax),
    FDL_NT(softmax),
    FDL_NT(softmax_cross_entropy),
    FDL_NT(softmax_cross_entropy_probs),
    FDL_NT(kl_divergence_logits),
    FDL_NT(binary_cross_entropy),
    FDL_NT(binary_cross_entropy_with_logits),
    FDL_NT(exp_map),
};

#undef FDL_NT
#undef FDL_EXP
#undef FDL_INT
