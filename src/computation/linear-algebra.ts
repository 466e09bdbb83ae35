/**
 * The little linear algebra the regressions need, on top of ml-matrix: sums that stay exact to
 * the last digits, and symmetric positive definite systems solved by Cholesky after scaling to
 * a unit diagonal. The scaling matters: cross-products of columns in grams and in millimetres
 * differ by orders of magnitude, and Cholesky on the scaled matrix keeps the digits that the
 * raw matrix would lose. Its pivots also tell which column (in order) is a linear combination
 * of the ones before it, so an error can name it.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';

/** Neumaier's compensated sum: site sums and pooled sums keep (nearly) every digit. */
export class CompensatedSum {
  private sum = 0;
  private compensation = 0;

  add(value: number): void {
    const next = this.sum + value;
    this.compensation +=
      Math.abs(this.sum) >= Math.abs(value) ? this.sum - next + value : value - next + this.sum;
    this.sum = next;
  }

  get value(): number {
    return this.sum + this.compensation;
  }
}

export function compensatedSum(values: Iterable<number>): number {
  const sum = new CompensatedSum();
  for (const value of values) sum.add(value);
  return sum.value;
}

export type SquareMatrix = readonly (readonly number[])[];

/** Below this, a scaled pivot means the column is explained by the earlier ones to 1 part in 10^10. */
export const SINGULAR_PIVOT = 1e-10;

export type Factorization =
  | {
      readonly kind: 'positive-definite';
      solve(b: readonly number[]): number[];
      inverse(): number[][];
    }
  | {
      readonly kind: 'singular';
      /** The first index whose row and column are (numerically) a combination of the earlier ones. */
      readonly index: number;
    };

/**
 * Factorizes a symmetric positive definite matrix, or finds where it is not. The matrix is read
 * from its upper triangle (so rounding or noise below the diagonal cannot break the symmetry
 * that ml-matrix checks), scaled to a unit diagonal, and decomposed by Cholesky. A pivot below
 * SINGULAR_PIVOT (1 - R² of that column on the earlier ones, in the scaled matrix) or a
 * diagonal entry that is not positive makes it singular at that index.
 */
export function factorize(matrix: SquareMatrix): Factorization {
  const size = matrix.length;
  const diagonal = matrix.map((row, i) => entry(row, i));
  const firstNotPositive = diagonal.findIndex((value) => !(value > 0) || !Number.isFinite(value));
  if (firstNotPositive >= 0) return { kind: 'singular', index: firstNotPositive };
  const scale = diagonal.map((value) => 1 / Math.sqrt(value));

  const scaled = new Matrix(size, size);
  for (let i = 0; i < size; i++) {
    scaled.set(i, i, 1);
    for (let j = i + 1; j < size; j++) {
      const value = entry(matrix[i], j) * at(scale, i) * at(scale, j);
      scaled.set(i, j, value);
      scaled.set(j, i, value);
    }
  }
  const cholesky = new CholeskyDecomposition(scaled);
  const lower = cholesky.lowerTriangularMatrix;
  for (let i = 0; i < size; i++) {
    const pivot = lower.get(i, i) ** 2;
    if (!(pivot >= SINGULAR_PIVOT)) return { kind: 'singular', index: i };
  }
  if (!cholesky.isPositiveDefinite()) return { kind: 'singular', index: size - 1 };

  return {
    kind: 'positive-definite',
    solve(b) {
      const right = Matrix.columnVector(b.map((value, i) => value * at(scale, i)));
      return cholesky.solve(right).getColumn(0).map((value, i) => value * at(scale, i));
    },
    inverse() {
      const inverse = cholesky.solve(Matrix.eye(size, size)).to2DArray();
      // Averaged with its transpose: the solves leave rounding that is not symmetric.
      return inverse.map((row, i) =>
        row.map((value, j) => ((value + at(inverse[j] ?? [], i)) / 2) * (at(scale, i) * at(scale, j))),
      );
    },
  };
}

/** A · B for small dense matrices given as arrays. */
export function multiply(a: SquareMatrix, b: SquareMatrix): number[][] {
  return new Matrix(a.map((row) => [...row])).mmul(new Matrix(b.map((row) => [...row]))).to2DArray();
}

export function quadraticForm(matrix: SquareMatrix, vector: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) {
    for (let j = 0; j < vector.length; j++) sum += at(vector, i) * entry(matrix[i], j) * at(vector, j);
  }
  return sum;
}

export function dot(a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += at(a, i) * at(b, i);
  return sum;
}

/** The entry of a vector, with a clear failure instead of `undefined` arithmetic. */
export function at(vector: readonly number[], index: number): number {
  const value = vector[index];
  if (value === undefined) throw new Error(`index ${index} outside a vector of ${vector.length}`);
  return value;
}

function entry(row: readonly number[] | undefined, column: number): number {
  if (row === undefined) throw new Error('a row outside the matrix');
  return at(row, column);
}
