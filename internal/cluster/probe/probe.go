package probe

import (
	_ "github.com/google/gnostic-models/openapiv2"
	_ "go.etcd.io/bbolt"
	_ "go.etcd.io/etcd/client/v3"
	_ "k8s.io/api/apps/v1"
	_ "k8s.io/apimachinery/pkg/util/strategicpatch"
	_ "k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	_ "k8s.io/apimachinery/pkg/runtime/serializer/json"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/client-go/informers"
	_ "gopkg.in/evanphx/json-patch.v4"
	_ "sigs.k8s.io/yaml"
)

import (
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "k8s.io/apimachinery/pkg/util/managedfields"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/kube-openapi/pkg/validation/spec"
	_ "k8s.io/kube-openapi/pkg/spec3"
)
