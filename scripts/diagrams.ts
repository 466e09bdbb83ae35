/**
 * `npm run diagrams`: draws the client machine from its definition into diagrams/ (Mermaid and
 * SVG), into the module the /web page embeds, and into README.md between its diagram markers.
 * Run it after changing the machine; the tests fail while the committed files differ.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diagramFiles, withReadmeDiagram } from '../src/visual/render.ts';

const root = fileURLToPath(new URL('../', import.meta.url));

async function update(path: string, content: string): Promise<void> {
  const file = join(root, path);
  const current = await readFile(file, 'utf8').catch(() => null);
  if (current === content) {
    process.stdout.write(`unchanged ${path}\n`);
    return;
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, content);
  process.stdout.write(`wrote     ${path}\n`);
}

const files = await diagramFiles();
for (const [path, content] of files) await update(path, content);

const mermaid = files.get('diagrams/client-machine.mmd');
const readme = await readFile(join(root, 'README.md'), 'utf8').catch(() => null);
if (mermaid !== undefined && readme !== null) await update('README.md', withReadmeDiagram(readme, mermaid));
