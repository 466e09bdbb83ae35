/**
 * Builds the bundled three-site sample (`npm run sample:build`) from the Palmer penguins table
 * shipped with vega-datasets: one site per island, each with its data.csv and the same
 * config.yml, plus sample/README.md with the row counts. The output is committed; running the
 * script again reproduces it byte for byte.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const root = new URL('../', import.meta.url);
const sourceFile = new URL('node_modules/vega-datasets/data/penguins.json', root);
const sourcePackage = new URL('node_modules/vega-datasets/package.json', root);
const sampleDir = new URL('sample/', root);

const measurement = z.number().finite().nullable();
const penguinSchema = z.object({
  Species: z.string().min(1),
  Island: z.string().min(1),
  'Beak Length (mm)': measurement,
  'Beak Depth (mm)': measurement,
  'Flipper Length (mm)': measurement,
  'Body Mass (g)': measurement,
  Sex: z.string().nullable(),
});
type Penguin = z.infer<typeof penguinSchema>;

/** Our column names (those of the palmerpenguins R package), in file order. */
const COLUMNS = ['species', 'island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex'];
const NUMERIC_COLUMNS = COLUMNS.slice(2, 6);
const SITES = ['Torgersen', 'Biscoe', 'Dream'] as const;

const CONFIG = `# The same at every site: each site's own rows are its data.csv.
fc-xstate-client:
  computation: statistics
  data: data.csv
  separator: ","
  parameters:
    columns: [${NUMERIC_COLUMNS.join(', ')}]
  # Secure aggregation and differential privacy are off; to try them, uncomment:
  # smpc: true
  # dp:
  #   noisetype: laplace
  #   epsilon: 1
  #   sensitivity: 1
`;

/** In the order of NUMERIC_COLUMNS. */
function measurementsOf(penguin: Penguin): (number | null)[] {
  return [
    penguin['Beak Length (mm)'],
    penguin['Beak Depth (mm)'],
    penguin['Flipper Length (mm)'],
    penguin['Body Mass (g)'],
  ];
}

function toRow(penguin: Penguin): string {
  const cell = (value: string | number | null) => (value === null ? 'NA' : String(value));
  return [penguin.Species, penguin.Island, ...measurementsOf(penguin), sexOf(penguin.Sex)].map(cell).join(',');
}

/** The source writes MALE/FEMALE and `.` or null for unknown; palmerpenguins writes male/female/NA. */
function sexOf(sex: string | null): string | null {
  if (sex === 'MALE' || sex === 'FEMALE') return sex.toLowerCase();
  return null;
}

interface Summary {
  readonly sites: readonly { island: string; rows: number; unmeasured: number }[];
  readonly total: number;
  /** Per numeric column, pooled over the sites. */
  readonly pooled: readonly { column: string; values: number; missing: number }[];
  readonly sourceVersion: string;
}

function readme({ sites, total, pooled, sourceVersion }: Summary): string {
  const code = (text: string) => `\`${text}\``;
  const siteLines = sites.map(
    ({ island, rows, unmeasured }) => `| ${code(`${island.toLowerCase()}/`)} | ${island} | ${rows} | ${unmeasured} |`,
  );
  const unmeasured = sites.reduce((sum, site) => sum + site.unmeasured, 0);
  const pooledLines = pooled.map(({ column, values, missing }) => `- ${code(column)}: ${values} values, ${missing} missing`);
  return `# Sample federation: Palmer penguins, one site per island

Three sites for trying the client and the simulator. Each folder is one site's input folder
(${code('/mnt/input')} on the platform): its own rows in ${code('data.csv')} and the same
${code('config.yml')}, which runs the ${code('statistics')} computation over the four numeric columns.

| site | island | rows | rows with no measurement |
| --- | --- | ---: | ---: |
${siteLines.join('\n')}
| all | | ${total} | ${unmeasured} |

Pooled over the three sites:

${pooledLines.join('\n')}

## Source and licence

The Palmer penguins data (Horst, Hill and Gorman, 2020, the ${code('palmerpenguins')} R package;
data collected by Dr. Kristen Gorman and the Palmer Station Antarctica LTER) are released under
**CC0 1.0** (public domain dedication). We take them from ${code('data/penguins.json')} of the
npm package ${code('vega-datasets')} ${sourceVersion}, which redistributes them under CC0.

## How it was made

${code('scripts/build-sample.ts')} reads the ${total} records, keeps their order and splits them
by ${code('Island')}. Changes from the source:

- columns renamed to the palmerpenguins names: ${COLUMNS.map(code).join(', ')};
- ${code('sex')} written ${code('male')}/${code('female')} as in palmerpenguins; the source's
  ${code('null')} and ${code('.')} (unknown) are written ${code('NA')};
- missing measurements are written ${code('NA')}. The records with no measurement at all are
  kept on purpose, so that missing-value handling is exercised.

To regenerate (byte for byte): ${code('npm install && npm run sample:build')}.
`;
}

async function readJson(url: URL): Promise<unknown> {
  return JSON.parse(await readFile(url, 'utf8'));
}

async function main(): Promise<void> {
  const penguins = z.array(penguinSchema).parse(await readJson(sourceFile));
  const { version: sourceVersion } = z.object({ version: z.string() }).parse(await readJson(sourcePackage));

  const sites = [];
  for (const island of SITES) {
    const rows = penguins.filter((penguin) => penguin.Island === island);
    const unmeasured = rows.filter((penguin) => measurementsOf(penguin).every((value) => value === null)).length;
    sites.push({ island, rows: rows.length, unmeasured });

    const siteDir = new URL(`${island.toLowerCase()}/`, sampleDir);
    await mkdir(siteDir, { recursive: true });
    await writeFile(new URL('data.csv', siteDir), [COLUMNS.join(','), ...rows.map(toRow)].join('\n') + '\n');
    await writeFile(new URL('config.yml', siteDir), CONFIG);
  }

  const assigned = sites.reduce((sum, site) => sum + site.rows, 0);
  if (assigned !== penguins.length) {
    throw new Error(`${penguins.length - assigned} records are on an island other than ${SITES.join(', ')}`);
  }
  const pooled = NUMERIC_COLUMNS.map((column, index) => {
    const missing = penguins.filter((penguin) => measurementsOf(penguin)[index] === null).length;
    return { column, values: penguins.length - missing, missing };
  });
  await writeFile(new URL('README.md', sampleDir), readme({ sites, total: penguins.length, pooled, sourceVersion }));

  const summary = sites.map((site) => `${site.island.toLowerCase()} ${site.rows}`).join(', ');
  console.log(`wrote ${fileURLToPath(sampleDir)}: ${summary} rows`);
}

await main();
