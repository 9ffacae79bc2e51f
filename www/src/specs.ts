// What the page reads from typed text: a concept to segment (the lab's concept box and
// ?concept=) and comma-separated items (neuron lists "9:4, 9:17", blocked words). Pure: no DOM
// (the unit tests run it in Node).

/** The engine's concept spec from what the user typed: "predicted" (empty, "predicted" or
 * "predicted class", in any case), a bundle class as "class:<its name>" (a class name in any
 * case, or "class:..." as typed), else the text itself. */
export function conceptSpec(typed: string, classes: readonly string[]): string {
  const text = typed.trim();
  if (text === "" || text.toLowerCase() === "predicted" || text.toLowerCase() === "predicted class") return "predicted";
  if (text.startsWith("class:")) return text;
  const match = classes.find((name) => name.toLowerCase() === text.toLowerCase());
  return match === undefined ? text : `class:${match}`;
}

/** The items of a comma-separated list, trimmed, empty ones left out ("9:4, ,9:17" -> ["9:4", "9:17"]). */
export function commaItems(text: string): string[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item);
}

/** "L:N", a neuron as a list's item. */
export function neuronKey(layer: number, neuron: number): string {
  return `${layer}:${neuron}`;
}

/** Whether `key` has the form of a list's item ("9:4"). */
export function isNeuronKey(key: string): boolean {
  return /^\d+:\d+$/.test(key);
}
