package apiserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

func intOrStr(n int32) intstr.IntOrString { return intstr.FromInt32(n) }

// allocator hands out ClusterIPs and NodePorts. The allocated set is the
// one recorded in the stored services; mu serializes allocate+create.
type allocator struct {
	mu             sync.Mutex
	cidr           *net.IPNet
	base, size     uint32
	portMin, portN int
}

func newAllocator(cidr string, pmin, pmax int) (*allocator, error) {
	if cidr == "" {
		cidr = "10.43.0.0/16"
	}
	if pmin == 0 {
		pmin = 30000
	}
	if pmax == 0 {
		pmax = 32767
	}
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return nil, fmt.Errorf("apiserver: bad service CIDR %q", cidr)
	}
	ones, bits := n.Mask.Size()
	return &allocator{cidr: n, base: binary.BigEndian.Uint32(n.IP.To4()), size: 1 << (bits - ones), portMin: pmin, portN: pmax - pmin + 1}, nil
}

func (a *allocator) ip(off uint32) net.IP {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, a.base+off)
	return b
}

// first is the address of the "kubernetes" service.
func (a *allocator) first() net.IP { return a.ip(1) }

func (s *Server) usedAddresses(ctx context.Context, skipUID string) (map[string]bool, map[int32]bool, error) {
	r := s.reg.lookup("", "v1", "services")
	res, err := s.store.List(ctx, r.storagePrefix(), store.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	ips, ports := map[string]bool{}, map[int32]bool{}
	for _, kv := range res.KVs {
		o, err := s.decodeStored(r, kv)
		if err != nil {
			continue
		}
		svc := o.(*corev1.Service)
		if string(svc.UID) == skipUID {
			continue
		}
		for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
			if ip != "" && ip != corev1.ClusterIPNone {
				ips[ip] = true
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				ports[p.NodePort] = true
			}
		}
	}
	return ips, ports, nil
}

func needsNodePorts(svc *corev1.Service) bool {
	if svc.Spec.Type == corev1.ServiceTypeNodePort {
		return true
	}
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && (svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts)
}

// allocateService fills and checks spec.clusterIP(s) and nodePorts, as
// kube-apiserver's service REST does. The returned release func must be
// called after the write (it unlocks the allocator).
func (s *Server) allocateService(ctx context.Context, svc, old *corev1.Service) (func(), error) {
	a := s.alloc
	a.mu.Lock()
	release := func() { a.mu.Unlock() }
	fail := func(errs field.ErrorList) (func(), error) {
		release()
		return func() {}, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, errs)
	}
	var skip string
	if old != nil {
		skip = string(old.UID)
	}
	ips, ports, err := s.usedAddresses(ctx, skip)
	if err != nil {
		release()
		return func() {}, apierrors.NewInternalError(err)
	}
	p := field.NewPath("spec")
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs, svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = "", nil, nil, nil
		return release, nil
	}
	if old != nil && svc.Spec.ClusterIP == "" && old.Spec.ClusterIP != "" {
		svc.Spec.ClusterIP = old.Spec.ClusterIP
	}
	if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) > 0 {
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	switch {
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
	case svc.Spec.ClusterIP == "":
		// random start, linear probe
		n := a.size - 2
		start := rand.Uint32N(n)
		found := false
		for i := uint32(0); i < n; i++ {
			ip := a.ip(1 + (start+i)%n).String()
			if ip == a.first().String() && svc.Name != "kubernetes" {
				continue
			}
			if !ips[ip] {
				svc.Spec.ClusterIP, found = ip, true
				break
			}
		}
		if !found {
			release()
			return func() {}, apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range is full"))
		}
	default:
		ip := net.ParseIP(svc.Spec.ClusterIP)
		fp := p.Child("clusterIPs").Index(0)
		switch {
		case ip == nil:
			return fail(field.ErrorList{field.Invalid(fp, svc.Spec.ClusterIP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")})
		case !a.cidr.Contains(ip):
			return fail(field.ErrorList{field.Invalid(fp, []string{svc.Spec.ClusterIP}, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, svc.Spec.ClusterIP, a.cidr))})
		case (old == nil || old.Spec.ClusterIP != svc.Spec.ClusterIP) && ips[ip.String()]:
			return fail(field.ErrorList{field.Invalid(fp, []string{svc.Spec.ClusterIP}, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP))})
		}
	}
	svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}

	oldPorts := map[int32]bool{}
	if old != nil {
		for _, op := range old.Spec.Ports {
			oldPorts[op.NodePort] = true
		}
	}
	if needsNodePorts(svc) {
		var errs field.ErrorList
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			fp := p.Child("ports").Index(i).Child("nodePort")
			if sp.NodePort == 0 && old != nil {
				for _, op := range old.Spec.Ports {
					if op.Port == sp.Port && op.Protocol == sp.Protocol && op.NodePort != 0 {
						sp.NodePort = op.NodePort
					}
				}
			}
			if sp.NodePort == 0 {
				start := rand.IntN(a.portN)
				for j := 0; j < a.portN; j++ {
					cand := int32(a.portMin + (start+j)%a.portN)
					if !ports[cand] {
						sp.NodePort = cand
						break
					}
				}
				if sp.NodePort == 0 {
					errs = append(errs, field.Invalid(fp, 0, "failed to allocate a nodePort: range is full"))
				}
				ports[sp.NodePort] = true
				continue
			}
			if int(sp.NodePort) < a.portMin || int(sp.NodePort) >= a.portMin+a.portN {
				errs = append(errs, field.Invalid(fp, sp.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.portMin, a.portMin+a.portN-1)))
				continue
			}
			if ports[sp.NodePort] && !oldPorts[sp.NodePort] {
				errs = append(errs, field.Invalid(fp, sp.NodePort, "provided port is already allocated"))
				continue
			}
			ports[sp.NodePort] = true
		}
		if len(errs) > 0 {
			return fail(errs)
		}
	} else if svc.Spec.Type == corev1.ServiceTypeClusterIP {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
	}
	return release, nil
}

// ---------- field selectors ----------

func podFields(o runtime.Object, s fields.Set) {
	p := o.(*corev1.Pod)
	s["spec.nodeName"] = p.Spec.NodeName
	s["spec.restartPolicy"] = string(p.Spec.RestartPolicy)
	s["spec.schedulerName"] = p.Spec.SchedulerName
	s["spec.serviceAccountName"] = p.Spec.ServiceAccountName
	s["spec.hostNetwork"] = fmt.Sprint(p.Spec.HostNetwork)
	s["status.phase"] = string(p.Status.Phase)
	s["status.podIP"] = p.Status.PodIP
	s["status.nominatedNodeName"] = p.Status.NominatedNodeName
}

func eventFields(o runtime.Object, s fields.Set) {
	e := o.(*corev1.Event)
	s["involvedObject.kind"] = e.InvolvedObject.Kind
	s["involvedObject.namespace"] = e.InvolvedObject.Namespace
	s["involvedObject.name"] = e.InvolvedObject.Name
	s["involvedObject.uid"] = string(e.InvolvedObject.UID)
	s["involvedObject.apiVersion"] = e.InvolvedObject.APIVersion
	s["involvedObject.resourceVersion"] = e.InvolvedObject.ResourceVersion
	s["involvedObject.fieldPath"] = e.InvolvedObject.FieldPath
	s["reason"] = e.Reason
	s["reportingComponent"] = e.ReportingController
	s["source"] = e.Source.Component
	s["type"] = e.Type
}

// ---------- node agent ----------

// NodeAgent serves the streaming pod subresources (pods/log, exec, attach,
// portforward, proxy). The container engine implements it; the API server
// has looked up the pod already.
type NodeAgent interface {
	ServePodStream(w http.ResponseWriter, r *http.Request, pod *corev1.Pod, subresource string)
}

func (s *Server) servePodStream(w http.ResponseWriter, req *http.Request, ns, name, sub string) {
	r := s.reg.lookup("", "v1", "pods")
	obj, _, err := s.getObject(req.Context(), r, ns, name)
	if err != nil {
		writeError(w, err)
		return
	}
	pod := obj.(*corev1.Pod)
	if s.opts.NodeAgent == nil {
		writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("pods/%s is not available: no node agent is running for pod %q", sub, name)))
		return
	}
	if pod.Spec.NodeName == "" && sub != "log" {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", name)))
		return
	}
	s.opts.NodeAgent.ServePodStream(w, req, pod, sub)
}
