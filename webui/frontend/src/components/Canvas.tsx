import {
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  ReactFlowProvider,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type Edge,
  type Node,
  type NodeChange,
  type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { createContext, memo, useCallback, useContext, useEffect, useMemo, useState } from "react";
import type { Graph } from "../model/workflowDoc";
import { quickLayout } from "./layout";
import { noStatus, StatusStore, useStepPhase } from "./status";

type StepData = { uses: string; label: string; problems: number };
type StepNodeT = Node<StepData, "step">;

const StatusContext = createContext<StatusStore>(noStatus);

const StepNode = memo(function StepNode({ id, data, selected }: NodeProps<StepNodeT>) {
  const store = useContext(StatusContext);
  const phase = useStepPhase(store, id);
  const cls = ["step-node", selected ? "selected" : "", phase ? `phase-${phase.toLowerCase()}` : "", data.problems ? "has-problems" : ""]
    .filter(Boolean)
    .join(" ");
  return (
    <div className={cls} data-testid={`step-${id}`} data-phase={phase ?? ""} aria-label={`step ${id}`}>
      <Handle type="target" position={Position.Left} />
      <div className="step-id">{data.label}</div>
      <div className="step-uses">{data.uses}</div>
      {phase && <div className="step-phase">{phase}</div>}
      {data.problems > 0 && (
        <div className="step-problems" title="validation problems">
          {data.problems} problem{data.problems > 1 ? "s" : ""}
        </div>
      )}
      <Handle type="source" position={Position.Right} />
    </div>
  );
});

const nodeTypes = { step: StepNode };

export interface CanvasProps {
  graph: Graph;
  editable: boolean;
  status?: StatusStore;
  problems?: Map<string, number>;
  selected?: string | null;
  onSelect?: (id: string | null) => void;
  onConnect?: (source: string, target: string) => void;
  onDisconnect?: (source: string, target: string) => void;
  onDelete?: (ids: string[]) => void;
  onMove?: (id: string, p: { x: number; y: number }) => void;
  onDropAction?: (uses: string, p: { x: number; y: number }) => void;
}

function toNodes(g: Graph, problems: Map<string, number> | undefined, selected: string | null | undefined): StepNodeT[] {
  const fallback = g.steps.some((s) => !s.position) ? quickLayout(g) : null;
  return g.steps.map((s) => ({
    id: s.id,
    type: "step",
    position: s.position ?? fallback!.get(s.id)!,
    data: { uses: s.uses, label: s.name ?? s.id, problems: problems?.get(s.id) ?? 0 },
    selected: s.id === selected,
  }));
}

export function Canvas(props: CanvasProps) {
  return (
    <ReactFlowProvider>
      <CanvasInner {...props} />
    </ReactFlowProvider>
  );
}

function CanvasInner(props: CanvasProps) {
  const flow = useReactFlow();
  const { graph, editable, problems, selected } = props;
  const [nodes, setNodes] = useState<StepNodeT[]>(() => toNodes(graph, problems, selected));
  useEffect(() => setNodes(toNodes(graph, problems, selected)), [graph, problems, selected]);
  const edges: Edge[] = useMemo(
    () =>
      graph.edges.map((e) => ({
        id: `${e.source}->${e.target}`,
        source: e.source,
        target: e.target,
        markerEnd: { type: MarkerType.ArrowClosed },
        deletable: editable,
      })),
    [graph, editable],
  );
  const { onSelect, onConnect, onDisconnect, onDelete, onMove, onDropAction } = props;
  const onNodesChange = useCallback((changes: NodeChange<StepNodeT>[]) => {
    // removals go through onNodesDelete (into the YAML); the rest is the drag in progress
    setNodes((ns) => applyNodeChanges(changes.filter((c) => c.type !== "remove"), ns));
  }, []);
  const handleConnect = useCallback((c: Connection) => onConnect?.(c.source, c.target), [onConnect]);
  return (
    <StatusContext.Provider value={props.status ?? noStatus}>
      <div
        className="canvas"
        onDragOver={(e) => {
          if (editable) e.preventDefault();
        }}
        onDrop={(e) => {
          const uses = e.dataTransfer.getData("application/x-autoflow-action");
          if (!uses || !onDropAction) return;
          e.preventDefault();
          const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
          onDropAction(uses, { x: p.x - 100, y: p.y - 32 });
        }}
      >
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          onNodesChange={onNodesChange}
          onConnect={editable ? handleConnect : undefined}
          onEdgesDelete={editable ? (es) => es.forEach((e) => onDisconnect?.(e.source, e.target)) : undefined}
          onNodesDelete={editable ? (ns) => onDelete?.(ns.map((n) => n.id)) : undefined}
          onNodeDragStop={editable ? (_e, n) => onMove?.(n.id, n.position) : undefined}
          onNodeClick={(_e, n) => onSelect?.(n.id)}
          onPaneClick={() => onSelect?.(null)}
          nodesDraggable={editable}
          nodesConnectable={editable}
          deleteKeyCode={editable ? ["Delete", "Backspace"] : null}
          onlyRenderVisibleElements={graph.steps.length > 100}
          fitView
          fitViewOptions={{ maxZoom: 1 }}
          minZoom={0.1}
          proOptions={{ hideAttribution: true }}
        >
          <Background />
          <Controls />
        </ReactFlow>
      </div>
    </StatusContext.Provider>
  );
}
