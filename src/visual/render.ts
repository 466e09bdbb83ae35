/**
 * The diagram files, rendered: the machine's Mermaid text and its SVG, drawn by Graphviz compiled
 * to WebAssembly (`@viz-js/viz`, a dev dependency), so no program outside node_modules is needed.
 * `npm run diagrams` writes these files and test/diagram.test.ts checks the committed ones.
 */
import { instance } from '@viz-js/viz';
import { clientMachine } from '../../machines/client.machine.ts';
import { machineGraph, toDot, toMermaid } from './diagram.ts';

/** Renders DOT to SVG; Graphviz's warnings are errors here, since the input is ours. */
export async function renderSvg(dot: string): Promise<string> {
  const viz = await instance();
  const result = viz.render(dot, { format: 'svg' });
  const problems = result.errors.map((error) => `${error.level ?? 'error'}: ${error.message}`);
  if (result.status !== 'success' || problems.length > 0) {
    throw new Error(`Graphviz could not render the diagram: ${problems.join('; ') || 'no output'}`);
  }
  return result.output;
}

/** The `<svg>` element alone, without the XML prolog, to place inside an HTML page. */
export function inlineSvg(svg: string): string {
  const start = svg.indexOf('<svg');
  if (start < 0) throw new Error('not an SVG document');
  return svg.slice(start).trimEnd();
}

/** The module the /web page embeds, so the page needs neither Graphviz nor diagrams/ at run time. */
export function svgModule(svg: string): string {
  return [
    '// Generated from machines/client.machine.ts by `npm run diagrams`; do not edit.',
    '// The client machine as an inline SVG for the /web page (the same drawing as diagrams/client-machine.svg).',
    `export const MACHINE_SVG = ${JSON.stringify(inlineSvg(svg))};`,
    '',
  ].join('\n');
}

/** Every generated file, by its path from the project root. */
export async function diagramFiles(): Promise<ReadonlyMap<string, string>> {
  const graph = machineGraph(clientMachine);
  const svg = await renderSvg(toDot(graph));
  return new Map([
    ['diagrams/client-machine.mmd', toMermaid(graph)],
    ['diagrams/client-machine.svg', svg],
    ['src/visual/machine-svg.ts', svgModule(svg)],
  ]);
}
