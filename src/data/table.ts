/**
 * A site's data table as read from its CSV file. Cells stay strings until a computation asks for
 * a column by type, so a non-numeric cell is reported with its file, row and column.
 */
export interface Table {
  /** The file the table came from, as the error messages name it (e.g. `data.csv`). */
  readonly source: string;
  readonly columns: readonly string[];
  readonly rowCount: number;
  /**
   * The column's numbers, null where the cell is missing (empty or `NA`, as pandas and R read
   * them). Throws an InputError naming the file and column for an unknown column, and the file,
   * row and column for a cell that is not a number.
   */
  numeric(column: string): readonly (number | null)[];
  /** The column's raw text, null where the cell is missing. Throws an InputError for an unknown column. */
  text(column: string): readonly (string | null)[];
}
