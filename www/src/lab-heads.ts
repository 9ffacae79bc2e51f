// The lab's "Heads" button on each significant neuron: it asks the engine for the neuron's later
// heads on the analysed image (`imageHeads`: each head's term c(I) s_{l,h,n}(I) (u_{l,h,n} . r_n)
// of its effect along r_n, without a new forward) and shows the grid under the neuron
// (head-grid.ts). Loaded once per row; a failure shows the engine's message.

import { el, toggleLoadedPanel } from "./dom";
import { headGridTable } from "./head-grid";
import type { Session } from "./session";

/** A significant neuron's "Heads" button and the panel it opens under the neuron; `imageName`
 * names the analysed image when the grid comes. */
export function headsToggle(session: Session, layer: number, neuron: number, imageName: () => string): [HTMLButtonElement, HTMLElement] {
  const panel = el("div", { class: "neuron-heads", id: `heads-${layer}-${neuron}`, hidden: true });
  const toggle = el(
    "button",
    {
      type: "button",
      class: "heads-toggle",
      "aria-expanded": "false",
      "aria-controls": panel.id,
      "aria-label": `Heads of layer ${layer}, neuron ${neuron}, on this image`,
    },
    "Heads",
  );
  toggle.addEventListener("click", () => void toggleHeads(session, toggle, panel, layer, neuron, imageName));
  return [toggle, panel];
}

/** Shows or hides the panel; the first opening loads the grid. */
async function toggleHeads(
  session: Session,
  toggle: HTMLButtonElement,
  panel: HTMLElement,
  layer: number,
  neuron: number,
  imageName: () => string,
): Promise<void> {
  await toggleLoadedPanel(toggle, panel, "Computing its heads on this image…", async () => {
    const grid = await session.call("imageHeads", { layer, neuron });
    return [
      el(
        "p",
        { class: "hint" },
        `On this image (${imageName()}): each attention head after layer ${layer} with its part of the neuron's effect along r_n, c(I) s_{l,h,n}(I) (u_{l,h,n}·r_n) (blue adds to r_n, red works against it).`,
      ),
      headGridTable(grid, `Through which heads after layer ${layer} the effect of neuron ${neuron} along r_n flows on this image`),
    ];
  });
}
