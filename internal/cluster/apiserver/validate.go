package apiserver

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateMeta checks metadata as kube-apiserver does for every resource.
func validateMeta(r *resource, obj runtime.Object) field.ErrorList {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil
	}
	nameFn := apimachineryvalidation.NameIsDNSSubdomain
	switch r.name {
	case "namespaces":
		nameFn = apimachineryvalidation.NameIsDNSLabel
	case "services":
		nameFn = apimachineryvalidation.NameIsDNS1035Label
	}
	return apimachineryvalidation.ValidateObjectMetaAccessor(m, r.namespaced, nameFn, field.NewPath("metadata"))
}

func validateNamespace(o, old runtime.Object) field.ErrorList { return nil }

func validateContainers(cs []corev1.Container, p *field.Path, required bool) field.ErrorList {
	var errs field.ErrorList
	if required && len(cs) == 0 {
		errs = append(errs, field.Required(p, ""))
	}
	names := map[string]bool{}
	for i, c := range cs {
		cp := p.Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(c.Name) {
				errs = append(errs, field.Invalid(cp.Child("name"), c.Name, msg))
			}
			if names[c.Name] {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
			}
			names[c.Name] = true
		}
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		}
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
			switch port.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"SCTP", "TCP", "UDP"}))
			}
		}
		switch c.ImagePullPolicy {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		default:
			errs = append(errs, field.NotSupported(cp.Child("imagePullPolicy"), c.ImagePullPolicy, []string{"Always", "IfNotPresent", "Never"}))
		}
	}
	return errs
}

func validatePodSpec(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	errs := validateContainers(s.Containers, p.Child("containers"), true)
	errs = append(errs, validateContainers(s.InitContainers, p.Child("initContainers"), false)...)
	switch s.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy, []string{"Always", "Never", "OnFailure"}))
	}
	return errs
}

func validatePod(o, old runtime.Object) field.ErrorList {
	pod := o.(*corev1.Pod)
	errs := validatePodSpec(&pod.Spec, field.NewPath("spec"))
	if old != nil {
		op := old.(*corev1.Pod)
		// Only a few pod spec fields may change (image, activeDeadlineSeconds, tolerations additions).
		a, b := pod.Spec.DeepCopy(), op.Spec.DeepCopy()
		for i := range a.Containers {
			if i < len(b.Containers) {
				a.Containers[i].Image = b.Containers[i].Image
			}
		}
		a.ActiveDeadlineSeconds, a.Tolerations = b.ActiveDeadlineSeconds, b.Tolerations
		if b.NodeName == "" {
			a.NodeName = ""
		}
		if !equalJSON(a, b) {
			errs = append(errs, field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"))
		}
	}
	return errs
}

func validateSelectorTemplate(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sel == nil {
		return append(errs, field.Required(p.Child("selector"), ""))
	}
	errs = append(errs, metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(p.Child("selector"), sel, "empty selector is invalid for deployment"))
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err == nil && !s.Empty() && !s.Matches(labels.Set(tmpl.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, metavalidation.ValidateLabels(tmpl.Labels, p.Child("template", "metadata", "labels"))...)
	errs = append(errs, validatePodSpec(&tmpl.Spec, p.Child("template", "spec"))...)
	if tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("template", "spec", "restartPolicy"), tmpl.Spec.RestartPolicy, []string{"Always"}))
	}
	return errs
}

func validateReplicas(n *int32, p *field.Path) field.ErrorList {
	if n != nil && *n < 0 {
		return field.ErrorList{field.Invalid(p, *n, "must be greater than or equal to 0")}
	}
	return nil
}

func validateDeployment(o, old runtime.Object) field.ErrorList {
	d := o.(*appsv1.Deployment)
	p := field.NewPath("spec")
	errs := validateReplicas(d.Spec.Replicas, p.Child("replicas"))
	errs = append(errs, validateSelectorTemplate(d.Spec.Selector, &d.Spec.Template, p)...)
	switch d.Spec.Strategy.Type {
	case appsv1.RollingUpdateDeploymentStrategyType, appsv1.RecreateDeploymentStrategyType:
	default:
		errs = append(errs, field.NotSupported(p.Child("strategy", "type"), d.Spec.Strategy.Type, []string{"Recreate", "RollingUpdate"}))
	}
	if old != nil {
		od := old.(*appsv1.Deployment)
		if !equalJSON(od.Spec.Selector, d.Spec.Selector) {
			errs = append(errs, field.Invalid(p.Child("selector"), d.Spec.Selector, "field is immutable"))
		}
	}
	return errs
}

func validateReplicaSet(o, old runtime.Object) field.ErrorList {
	rs := o.(*appsv1.ReplicaSet)
	p := field.NewPath("spec")
	errs := validateReplicas(rs.Spec.Replicas, p.Child("replicas"))
	errs = append(errs, validateSelectorTemplate(rs.Spec.Selector, &rs.Spec.Template, p)...)
	if old != nil && !equalJSON(old.(*appsv1.ReplicaSet).Spec.Selector, rs.Spec.Selector) {
		errs = append(errs, field.Invalid(p.Child("selector"), rs.Spec.Selector, "field is immutable"))
	}
	return errs
}

func validateService(o, old runtime.Object) field.ErrorList {
	s := o.(*corev1.Service)
	p := field.NewPath("spec")
	var errs field.ErrorList
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), s.Spec.Type, []string{"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"}))
	}
	if s.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != corev1.ClusterIPNone && len(s.Spec.Ports) == 0 {
		errs = append(errs, field.Required(p.Child("ports"), ""))
	}
	names := map[string]bool{}
	for i, port := range s.Spec.Ports {
		pp := p.Child("ports").Index(i)
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		}
		if port.Name != "" {
			if names[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		for _, msg := range validation.IsValidPortNum(int(port.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), port.Port, msg))
		}
		if port.TargetPort.IntVal != 0 || port.TargetPort.StrVal == "" {
			for _, msg := range validation.IsValidPortNum(port.TargetPort.IntValue()) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), port.TargetPort.IntValue(), msg))
			}
		}
		switch port.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"SCTP", "TCP", "UDP"}))
		}
		if port.NodePort != 0 && s.Spec.Type == corev1.ServiceTypeClusterIP {
			errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
		}
	}
	errs = append(errs, metavalidation.ValidateLabels(s.Spec.Selector, p.Child("selector"))...)
	if old != nil {
		os := old.(*corev1.Service)
		if os.Spec.ClusterIP != "" && s.Spec.ClusterIP != os.Spec.ClusterIP && s.Spec.Type != corev1.ServiceTypeExternalName {
			errs = append(errs, field.Invalid(p.Child("clusterIPs").Index(0), s.Spec.ClusterIP, "may not change once set"))
		}
	}
	return errs
}

func validateEvent(o, old runtime.Object) field.ErrorList {
	e := o.(*corev1.Event)
	var errs field.ErrorList
	if e.InvolvedObject.Namespace != "" && e.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), e.InvolvedObject.Namespace, "does not match event.namespace"))
	}
	return errs
}

func checkSelectorUpdate(a, b interface{}) error {
	if !equalJSON(a, b) {
		return fmt.Errorf("field is immutable")
	}
	return nil
}

// maxConfigSize is kube-apiserver's limit on the data of a ConfigMap or a
// Secret (core.MaxSecretSize).
const maxConfigSize = 1 << 20

func validateConfigKeys[V string | []byte](data map[string]V, p *field.Path, size *int) field.ErrorList {
	var errs field.ErrorList
	for _, k := range sortedKeys(data) {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(p.Key(k), k, msg))
		}
		*size += len(data[k])
	}
	return errs
}

func validateConfigMap(o, old runtime.Object) field.ErrorList {
	cm := o.(*corev1.ConfigMap)
	size := 0
	errs := validateConfigKeys(cm.Data, field.NewPath("data"), &size)
	errs = append(errs, validateConfigKeys(cm.BinaryData, field.NewPath("binaryData"), &size)...)
	for _, k := range sortedKeys(cm.BinaryData) {
		if _, dup := cm.Data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
	}
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxConfigSize))
	}
	if old != nil {
		errs = append(errs, validateImmutableData(old.(*corev1.ConfigMap).Immutable, cm.Immutable,
			equalJSON(old.(*corev1.ConfigMap).Data, cm.Data) && equalJSON(old.(*corev1.ConfigMap).BinaryData, cm.BinaryData))...)
	}
	return errs
}

func validateSecret(o, old runtime.Object) field.ErrorList {
	sec := o.(*corev1.Secret)
	size := 0
	errs := validateConfigKeys(sec.Data, field.NewPath("data"), &size)
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxConfigSize))
	}
	if old != nil {
		os := old.(*corev1.Secret)
		if os.Type != sec.Type {
			errs = append(errs, field.Invalid(field.NewPath("type"), sec.Type, "field is immutable"))
		}
		errs = append(errs, validateImmutableData(os.Immutable, sec.Immutable, equalJSON(os.Data, sec.Data))...)
	}
	return errs
}

// validateImmutableData: once immutable is true, neither it nor the data
// may change.
func validateImmutableData(oldImm, newImm *bool, sameData bool) field.ErrorList {
	if oldImm == nil || !*oldImm {
		return nil
	}
	var errs field.ErrorList
	if newImm == nil || !*newImm {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if !sameData {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}
