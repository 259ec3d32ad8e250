package apiserver

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Table columns as kube-apiserver's printers define them.

func col(name, typ, format string, priority int32, desc string, cell func(runtime.Object) interface{}) column {
	return column{def: metav1.TableColumnDefinition{Name: name, Type: typ, Format: format, Priority: priority, Description: desc}, cell: cell}
}

var nameCol = col("Name", "string", "name", 0, metav1.ObjectMeta{}.SwaggerDoc()["name"], func(o runtime.Object) interface{} {
	return o.(metav1.Object).GetName()
})

var ageCol = col("Age", "string", "", 0, metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], func(o runtime.Object) interface{} {
	return age(o.(metav1.Object).GetCreationTimestamp())
})

// defaultColumns is the table of resources without a printer.
var defaultColumns = []column{nameCol, col("Created At", "date", "", 0, metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], func(o runtime.Object) interface{} {
	return o.(metav1.Object).GetCreationTimestamp().UTC().Format(time.RFC3339)
})}

func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func containersImages(spec *corev1.PodSpec) (string, string) {
	var n, i []string
	for _, c := range spec.Containers {
		n = append(n, c.Name)
		i = append(i, c.Image)
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}

func selectorString(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || sel.Empty() {
		return "<none>"
	}
	return sel.String()
}

var namespaceColumns = []column{nameCol,
	col("Status", "string", "", 0, "The status of the namespace", func(o runtime.Object) interface{} { return string(o.(*corev1.Namespace).Status.Phase) }),
	ageCol}

func podReadyStatus(p *corev1.Pod) (ready string, status string, restarts int64) {
	total := len(p.Spec.Containers)
	n := 0
	status = string(p.Status.Phase)
	if p.Status.Reason != "" {
		status = p.Status.Reason
	}
	for _, cs := range p.Status.ContainerStatuses {
		restarts += int64(cs.RestartCount)
		if cs.Ready && cs.State.Running != nil {
			n++
		}
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			status = cs.State.Waiting.Reason
		} else if cs.State.Terminated != nil && cs.State.Terminated.Reason != "" {
			status = cs.State.Terminated.Reason
		}
	}
	if p.DeletionTimestamp != nil {
		status = "Terminating"
	}
	return fmt.Sprintf("%d/%d", n, total), status, restarts
}

var podColumns = []column{nameCol,
	col("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic.", func(o runtime.Object) interface{} {
		r, _, _ := podReadyStatus(o.(*corev1.Pod))
		return r
	}),
	col("Status", "string", "", 0, "The aggregate status of the containers in this pod.", func(o runtime.Object) interface{} {
		_, s, _ := podReadyStatus(o.(*corev1.Pod))
		return s
	}),
	col("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", func(o runtime.Object) interface{} {
		_, _, r := podReadyStatus(o.(*corev1.Pod))
		return fmt.Sprint(r)
	}),
	ageCol,
	col("IP", "string", "", 1, corev1.PodStatus{}.SwaggerDoc()["podIP"], func(o runtime.Object) interface{} { return noneIfEmpty(o.(*corev1.Pod).Status.PodIP) }),
	col("Node", "string", "", 1, corev1.PodSpec{}.SwaggerDoc()["nodeName"], func(o runtime.Object) interface{} { return noneIfEmpty(o.(*corev1.Pod).Spec.NodeName) }),
	col("Nominated Node", "string", "", 1, corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"], func(o runtime.Object) interface{} {
		return noneIfEmpty(o.(*corev1.Pod).Status.NominatedNodeName)
	}),
	col("Readiness Gates", "string", "", 1, corev1.PodSpec{}.SwaggerDoc()["readinessGates"], func(o runtime.Object) interface{} {
		p := o.(*corev1.Pod)
		if len(p.Spec.ReadinessGates) == 0 {
			return "<none>"
		}
		return fmt.Sprintf("0/%d", len(p.Spec.ReadinessGates))
	}),
}

var deploymentColumns = []column{nameCol,
	col("Ready", "string", "", 0, "Number of the pod with ready state", func(o runtime.Object) interface{} {
		d := o.(*appsv1.Deployment)
		want := int32(0)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		return fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want)
	}),
	col("Up-to-date", "integer", "", 0, appsv1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"], func(o runtime.Object) interface{} {
		return int64(o.(*appsv1.Deployment).Status.UpdatedReplicas)
	}),
	col("Available", "integer", "", 0, appsv1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"], func(o runtime.Object) interface{} {
		return int64(o.(*appsv1.Deployment).Status.AvailableReplicas)
	}),
	ageCol,
	col("Containers", "string", "", 1, "Names of each container in the template.", func(o runtime.Object) interface{} {
		c, _ := containersImages(&o.(*appsv1.Deployment).Spec.Template.Spec)
		return c
	}),
	col("Images", "string", "", 1, "Images referenced by each container in the template.", func(o runtime.Object) interface{} {
		_, i := containersImages(&o.(*appsv1.Deployment).Spec.Template.Spec)
		return i
	}),
	col("Selector", "string", "", 1, appsv1.DeploymentSpec{}.SwaggerDoc()["selector"], func(o runtime.Object) interface{} {
		return selectorString(o.(*appsv1.Deployment).Spec.Selector)
	}),
}

var replicaSetColumns = []column{nameCol,
	col("Desired", "integer", "", 0, appsv1.ReplicaSetSpec{}.SwaggerDoc()["replicas"], func(o runtime.Object) interface{} {
		rs := o.(*appsv1.ReplicaSet)
		if rs.Spec.Replicas == nil {
			return int64(0)
		}
		return int64(*rs.Spec.Replicas)
	}),
	col("Current", "integer", "", 0, appsv1.ReplicaSetStatus{}.SwaggerDoc()["replicas"], func(o runtime.Object) interface{} {
		return int64(o.(*appsv1.ReplicaSet).Status.Replicas)
	}),
	col("Ready", "integer", "", 0, appsv1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"], func(o runtime.Object) interface{} {
		return int64(o.(*appsv1.ReplicaSet).Status.ReadyReplicas)
	}),
	ageCol,
	col("Containers", "string", "", 1, "Names of each container in the template.", func(o runtime.Object) interface{} {
		c, _ := containersImages(&o.(*appsv1.ReplicaSet).Spec.Template.Spec)
		return c
	}),
	col("Images", "string", "", 1, "Images referenced by each container in the template.", func(o runtime.Object) interface{} {
		_, i := containersImages(&o.(*appsv1.ReplicaSet).Spec.Template.Spec)
		return i
	}),
	col("Selector", "string", "", 1, appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"], func(o runtime.Object) interface{} {
		return selectorString(o.(*appsv1.ReplicaSet).Spec.Selector)
	}),
}

func servicePorts(s *corev1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return "<none>"
	}
	var parts []string
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			parts = append(parts, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			parts = append(parts, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	return strings.Join(parts, ",")
}

func serviceExternalIP(s *corev1.Service) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, i := range s.Status.LoadBalancer.Ingress {
			if i.IP != "" {
				ips = append(ips, i.IP)
			} else if i.Hostname != "" {
				ips = append(ips, i.Hostname)
			}
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	}
	if len(s.Spec.ExternalIPs) > 0 {
		return strings.Join(s.Spec.ExternalIPs, ",")
	}
	return "<none>"
}

var serviceColumns = []column{nameCol,
	col("Type", "string", "", 0, corev1.ServiceSpec{}.SwaggerDoc()["type"], func(o runtime.Object) interface{} { return string(o.(*corev1.Service).Spec.Type) }),
	col("Cluster-IP", "string", "", 0, corev1.ServiceSpec{}.SwaggerDoc()["clusterIP"], func(o runtime.Object) interface{} {
		return noneIfEmpty(o.(*corev1.Service).Spec.ClusterIP)
	}),
	col("External-IP", "string", "", 0, corev1.ServiceSpec{}.SwaggerDoc()["externalIPs"], func(o runtime.Object) interface{} {
		return serviceExternalIP(o.(*corev1.Service))
	}),
	col("Port(s)", "string", "", 0, corev1.ServiceSpec{}.SwaggerDoc()["ports"], func(o runtime.Object) interface{} { return servicePorts(o.(*corev1.Service)) }),
	ageCol,
	col("Selector", "string", "", 1, corev1.ServiceSpec{}.SwaggerDoc()["selector"], func(o runtime.Object) interface{} {
		s := o.(*corev1.Service).Spec.Selector
		if len(s) == 0 {
			return "<none>"
		}
		return labels.Set(s).String()
	}),
}

func nodeStatus(n *corev1.Node) string {
	st := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				st = "Ready"
			} else {
				st = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		st += ",SchedulingDisabled"
	}
	return st
}

func nodeRoles(n *corev1.Node) string {
	var roles []string
	for k, v := range n.Labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		} else if k == "kubernetes.io/role" && v != "" {
			roles = append(roles, v)
		}
	}
	sort.Strings(roles)
	if len(roles) == 0 {
		return "<none>"
	}
	return strings.Join(roles, ",")
}

func nodeAddr(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

var nodeColumns = []column{nameCol,
	col("Status", "string", "", 0, "The status of the node", func(o runtime.Object) interface{} { return nodeStatus(o.(*corev1.Node)) }),
	col("Roles", "string", "", 0, "The roles of the node", func(o runtime.Object) interface{} { return nodeRoles(o.(*corev1.Node)) }),
	ageCol,
	col("Version", "string", "", 0, corev1.NodeSystemInfo{}.SwaggerDoc()["kubeletVersion"], func(o runtime.Object) interface{} {
		return o.(*corev1.Node).Status.NodeInfo.KubeletVersion
	}),
	col("Internal-IP", "string", "", 1, corev1.NodeStatus{}.SwaggerDoc()["addresses"], func(o runtime.Object) interface{} {
		return nodeAddr(o.(*corev1.Node), corev1.NodeInternalIP)
	}),
	col("External-IP", "string", "", 1, corev1.NodeStatus{}.SwaggerDoc()["addresses"], func(o runtime.Object) interface{} {
		return nodeAddr(o.(*corev1.Node), corev1.NodeExternalIP)
	}),
	col("OS-Image", "string", "", 1, corev1.NodeSystemInfo{}.SwaggerDoc()["osImage"], func(o runtime.Object) interface{} {
		return noneIfEmpty(o.(*corev1.Node).Status.NodeInfo.OSImage)
	}),
	col("Kernel-Version", "string", "", 1, corev1.NodeSystemInfo{}.SwaggerDoc()["kernelVersion"], func(o runtime.Object) interface{} {
		return noneIfEmpty(o.(*corev1.Node).Status.NodeInfo.KernelVersion)
	}),
	col("Container-Runtime", "string", "", 1, corev1.NodeSystemInfo{}.SwaggerDoc()["containerRuntimeVersion"], func(o runtime.Object) interface{} {
		return noneIfEmpty(o.(*corev1.Node).Status.NodeInfo.ContainerRuntimeVersion)
	}),
}

var endpointsColumns = []column{nameCol,
	col("Endpoints", "string", "", 0, corev1.Endpoints{}.SwaggerDoc()["subsets"], func(o runtime.Object) interface{} {
		var eps []string
		for _, ss := range o.(*corev1.Endpoints).Subsets {
			for _, a := range ss.Addresses {
				if len(ss.Ports) == 0 {
					eps = append(eps, a.IP)
				}
				for _, p := range ss.Ports {
					eps = append(eps, fmt.Sprintf("%s:%d", a.IP, p.Port))
				}
			}
		}
		if len(eps) == 0 {
			return "<none>"
		}
		if len(eps) > 3 {
			return strings.Join(eps[:3], ",") + fmt.Sprintf(" + %d more...", len(eps)-3)
		}
		return strings.Join(eps, ",")
	}),
	ageCol}

var endpointSliceColumns = []column{nameCol,
	col("AddressType", "string", "", 0, discoveryv1.EndpointSlice{}.SwaggerDoc()["addressType"], func(o runtime.Object) interface{} {
		return string(o.(*discoveryv1.EndpointSlice).AddressType)
	}),
	col("Ports", "string", "", 0, discoveryv1.EndpointSlice{}.SwaggerDoc()["ports"], func(o runtime.Object) interface{} {
		var ps []string
		for _, p := range o.(*discoveryv1.EndpointSlice).Ports {
			if p.Port != nil {
				ps = append(ps, fmt.Sprint(*p.Port))
			}
		}
		if len(ps) == 0 {
			return "<unset>"
		}
		return strings.Join(ps, ",")
	}),
	col("Endpoints", "string", "", 0, discoveryv1.EndpointSlice{}.SwaggerDoc()["endpoints"], func(o runtime.Object) interface{} {
		var as []string
		for _, e := range o.(*discoveryv1.EndpointSlice).Endpoints {
			as = append(as, e.Addresses...)
		}
		if len(as) == 0 {
			return "<unset>"
		}
		return strings.Join(as, ",")
	}),
	ageCol}

var configMapColumns = []column{nameCol,
	col("Data", "integer", "", 0, corev1.ConfigMap{}.SwaggerDoc()["data"], func(o runtime.Object) interface{} {
		c := o.(*corev1.ConfigMap)
		return int64(len(c.Data) + len(c.BinaryData))
	}),
	ageCol}

var secretColumns = []column{nameCol,
	col("Type", "string", "", 0, corev1.Secret{}.SwaggerDoc()["type"], func(o runtime.Object) interface{} { return string(o.(*corev1.Secret).Type) }),
	col("Data", "integer", "", 0, corev1.Secret{}.SwaggerDoc()["data"], func(o runtime.Object) interface{} {
		s := o.(*corev1.Secret)
		return int64(len(s.Data) + len(s.StringData))
	}),
	ageCol}

var serviceAccountColumns = []column{nameCol,
	col("Secrets", "integer", "", 0, corev1.ServiceAccount{}.SwaggerDoc()["secrets"], func(o runtime.Object) interface{} {
		return int64(len(o.(*corev1.ServiceAccount).Secrets))
	}),
	ageCol}

var leaseColumns = []column{nameCol,
	col("Holder", "string", "", 0, coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"], func(o runtime.Object) interface{} {
		if h := o.(*coordinationv1.Lease).Spec.HolderIdentity; h != nil {
			return *h
		}
		return ""
	}),
	ageCol}

func eventLastSeen(e *corev1.Event) metav1.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case e.Series != nil:
		return metav1.Time{Time: e.Series.LastObservedTime.Time}
	case !e.EventTime.IsZero():
		return metav1.Time{Time: e.EventTime.Time}
	}
	return e.CreationTimestamp
}

var eventColumns = []column{
	col("Last Seen", "string", "", 0, corev1.Event{}.SwaggerDoc()["lastTimestamp"], func(o runtime.Object) interface{} { return age(eventLastSeen(o.(*corev1.Event))) }),
	col("Type", "string", "", 0, corev1.Event{}.SwaggerDoc()["type"], func(o runtime.Object) interface{} { return o.(*corev1.Event).Type }),
	col("Reason", "string", "", 0, corev1.Event{}.SwaggerDoc()["reason"], func(o runtime.Object) interface{} { return o.(*corev1.Event).Reason }),
	col("Object", "string", "", 0, corev1.Event{}.SwaggerDoc()["involvedObject"], func(o runtime.Object) interface{} {
		e := o.(*corev1.Event)
		return strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
	}),
	col("Subobject", "string", "", 1, corev1.ObjectReference{}.SwaggerDoc()["fieldPath"], func(o runtime.Object) interface{} {
		return o.(*corev1.Event).InvolvedObject.FieldPath
	}),
	col("Source", "string", "", 1, corev1.Event{}.SwaggerDoc()["source"], func(o runtime.Object) interface{} {
		e := o.(*corev1.Event)
		src := e.Source.Component
		if src == "" {
			src = e.ReportingController
		}
		if e.Source.Host != "" {
			src += ", " + e.Source.Host
		}
		return src
	}),
	col("Message", "string", "", 0, corev1.Event{}.SwaggerDoc()["message"], func(o runtime.Object) interface{} { return strings.TrimSpace(o.(*corev1.Event).Message) }),
	col("First Seen", "string", "", 1, corev1.Event{}.SwaggerDoc()["firstTimestamp"], func(o runtime.Object) interface{} {
		e := o.(*corev1.Event)
		if e.FirstTimestamp.IsZero() {
			return age(e.CreationTimestamp)
		}
		return age(e.FirstTimestamp)
	}),
	col("Count", "string", "", 1, corev1.Event{}.SwaggerDoc()["count"], func(o runtime.Object) interface{} {
		e := o.(*corev1.Event)
		if e.Series != nil {
			return fmt.Sprint(e.Series.Count)
		}
		return fmt.Sprint(e.Count)
	}),
	col("Name", "string", "name", 1, metav1.ObjectMeta{}.SwaggerDoc()["name"], func(o runtime.Object) interface{} { return o.(metav1.Object).GetName() }),
}

// tableFor renders objects as a meta.k8s.io/v1 Table.
func tableFor(r *resource, objs []runtime.Object, withHeaders bool, includeObject string) *metav1.Table {
	cols := r.columns
	if cols == nil {
		cols = defaultColumns
	}
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}}
	if withHeaders {
		for _, c := range cols {
			t.ColumnDefinitions = append(t.ColumnDefinitions, c.def)
		}
	}
	t.Rows = []metav1.TableRow{}
	for _, o := range objs {
		row := metav1.TableRow{}
		for _, c := range cols {
			row.Cells = append(row.Cells, c.cell(o))
		}
		switch includeObject {
		case "None":
		case "Object":
			row.Object = runtime.RawExtension{Object: o}
		default:
			m := o.(metav1.Object)
			pom := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
			pom.ObjectMeta = *metaOf(m)
			pom.ManagedFields = nil
			row.Object = runtime.RawExtension{Object: pom}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func metaOf(m metav1.Object) *metav1.ObjectMeta {
	if om, ok := m.(interface{ GetObjectMeta() metav1.Object }); ok {
		if p, ok := om.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return p.DeepCopy()
		}
	}
	return &metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(),
		CreationTimestamp: m.GetCreationTimestamp(), Labels: m.GetLabels(), Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences()}
}
