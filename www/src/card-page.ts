// card.html: the demo of the embeddable card; `?bundle=&layer=&neuron=` pick what it shows.
import "./neuron-card";

const params = new URLSearchParams(location.search);
const card = document.getElementById("card");
for (const name of ["bundle", "layer", "neuron"]) {
  const value = params.get(name);
  if (card && value !== null) card.setAttribute(name, value);
}
