// LegoDiffusion editor extension (served by our server at /extensions/lego/).
// The stock editor opens its built-in default graph on a first visit. When that graph needs
// node types this server does not have (frontend 1.5x ships a Z-Image graph), replace it with a
// default graph that runs here: the classic text-to-image graph on the server's checkpoint.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

let nodeTypes = null; // class names this server offers (from /object_info)

function typesOf(graph) {
  return (graph?._nodes ?? graph?.nodes ?? []).map((n) => n.type).sort().join(",");
}

async function replaceUnrunnableStockDefault() {
  const stock = window.comfyAPI?.defaultGraph?.defaultGraph;
  const current = app.rootGraph ?? app.graph;
  if (!stock || !current || typesOf(current) !== typesOf(stock)) return; // a user's own graph
  if (nodeTypes === null) {
    nodeTypes = new Set(Object.keys(await (await api.fetchApi("/object_info")).json()));
  }
  if ((current._nodes ?? current.nodes ?? []).every((n) => nodeTypes.has(n.type))) return;
  const response = await api.fetchApi("/lego/default_workflow");
  if (!response.ok) return;
  const workflow = await response.json();
  // Load after the current load has finished (loads are serialised: awaiting here would wait
  // for ourselves).
  setTimeout(() => app.loadGraphData(workflow), 0);
}

app.registerExtension({
  name: "LegoDiffusion.RunnableDefault",
  // Called after every graph load; the swap loads a graph that passes the check above.
  async afterLoadGraph() {
    try {
      await replaceUnrunnableStockDefault();
    } catch (err) {
      console.warn("LegoDiffusion: could not check the default graph", err);
    }
  },
});
