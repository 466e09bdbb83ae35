/**
 * Two-sided p values of the t and standard normal distributions, for the regressions' tests of
 * "coefficient = 0". Written from the textbook formulas (no statistics package is a dependency):
 *
 * - t with ν degrees of freedom: P(|T| > t) = I_{ν/(ν+t²)}(ν/2, 1/2), the regularized incomplete
 *   beta function, evaluated by its continued fraction (DLMF 8.17.22) with the modified Lentz
 *   method, and ln Γ by Stirling's series after shifting the argument above 10.
 * - normal: P(|Z| > z) = erfc(z/√2), by its power series below 1.5 and its continued fraction
 *   (DLMF 7.9.2) above.
 *
 * Both keep about 13 significant digits, also deep in the tail (a p value of 1e-100 too), which
 * the tests check against closed forms. For t with very many degrees of freedom the difference
 * ln Γ(ν/2) - ln Γ((ν+1)/2) loses digits: still 10 or more up to ν = 10^5, 8 at 10^7.
 */

/** P(|T| > |t|) for Student's t with `df` > 0 degrees of freedom (df may be fractional). */
export function tTwoSidedP(t: number, df: number): number {
  if (!Number.isFinite(t) || !(df > 0) || !Number.isFinite(df)) return Number.NaN;
  const t2 = t * t;
  // x = df/(df+t²) and 1 - x = t²/(df+t²), each computed directly so neither cancels.
  const x = df / (df + t2);
  const complement = t2 / (df + t2);
  return regularizedBeta(x, complement, df / 2, 0.5);
}

/** P(|Z| > |z|) for the standard normal distribution. */
export function normalTwoSidedP(z: number): number {
  if (!Number.isFinite(z)) return Number.NaN;
  return erfc(Math.abs(z) / Math.SQRT2);
}

/** The complementary error function for x ≥ 0. */
export function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 1.5) return 1 - erfSeries(x);
  return erfcContinuedFraction(x);
}

/** erf(x) = 2/√π · e^{-x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1)): positive terms, no cancellation. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
}

/** erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), for x ≥ 1.5. */
function erfcContinuedFraction(x: number): number {
  const fraction = lentz((n) => n / 2, () => x, x);
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / fraction;
}

/**
 * I_x(a, b), given x and 1 - x separately. The continued fraction converges fast for
 * x < (a + 1)/(a + b + 2); beyond, the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) is used.
 */
export function regularizedBeta(x: number, complement: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (complement <= 0) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - regularizedBeta(complement, x, b, a);
  const logFront = a * Math.log(x) + b * Math.log(complement) - logBeta(a, b);
  // d_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)),  d_{2m} = m(b-m)x / ((a+2m-1)(a+2m)).
  const numerator = (n: number): number => {
    const m = Math.floor(n / 2);
    if (n % 2 === 1) return (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    return (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
  };
  const fraction = lentz(numerator, () => 1, 1);
  return Math.exp(logFront) / (a * fraction);
}

/**
 * b0 + a1/(b1 + a2/(b2 + …)) by the modified Lentz method: `numerator(n)` is a_n, `denominator(n)`
 * is b_n for n ≥ 1, and b0 is given.
 */
function lentz(numerator: (n: number) => number, denominator: (n: number) => number, b0: number): number {
  const tiny = 1e-300;
  let value = b0 === 0 ? tiny : b0;
  let c = value;
  let d = 0;
  for (let n = 1; n < 10_000; n++) {
    const an = numerator(n);
    const bn = denominator(n);
    d = bn + an * d;
    if (d === 0) d = tiny;
    c = bn + an / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    value *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return value;
}

function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** ln Γ(x) for x > 0: Stirling's series (error below 1e-16 from x = 10), shifted up by Γ(x+1) = xΓ(x). */
export function logGamma(x: number): number {
  let shift = 0;
  let product = 1;
  while (x + shift < 10) {
    product *= x + shift;
    shift++;
  }
  const y = x + shift;
  const y2 = y * y;
  // Coefficients B_{2k} / (2k(2k-1)) of the Bernoulli numbers: 1/12, -1/360, 1/1260, -1/1680, ...
  const series =
    (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - (1 / 1188 - (691 / 360360 - 1 / (156 * y2)) / y2) / y2) / y2) / y2) / y2) / y;
  const stirling = (y - 0.5) * Math.log(y) - y + 0.5 * Math.log(2 * Math.PI) + series;
  return stirling - Math.log(product);
}
