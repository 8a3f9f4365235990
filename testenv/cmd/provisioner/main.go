// Command provisioner is the local control plane's stand-in for a storage driver. kwok runs
// no kubelet and provisions no volumes, so without it every StatefulSet pod with a volume
// claim would stay Pending. Like a real dynamic provisioner it serves only the StorageClasses
// that name it: a claim for an unknown class stays Pending, as it would on a real cluster.
// It creates a PersistentVolume pre-bound to each pending claim and deletes released volumes
// whose reclaim policy is Delete.
//
// With --local-dir and --node (the cluster's real node), each volume is a directory of its
// own under --local-dir, served as a `local` PersistentVolume pinned to that node: the
// kubelet mounts it and applies the pod's fsGroup, so a non-root database can write it. The
// directory is removed with its volume.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

// Name is the provisioner name StorageClasses refer to.
const Name = "testenv.sdc.gov.rs/local"

const provisionedBy = "pv.kubernetes.io/provisioned-by"

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path to the admin kubeconfig")
	localDir := flag.String("local-dir", "", "serve volumes as directories under this path (real node)")
	node := flag.String("node", "", "the node that holds --local-dir")
	flag.Parse()
	if (*localDir == "") != (*node == "") {
		log.Fatal("--local-dir and --node go together")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	claims := factory.Core().V1().PersistentVolumeClaims()
	volumes := factory.Core().V1().PersistentVolumes()
	classes := factory.Storage().V1().StorageClasses()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(prefix string) func(obj any) {
		return func(obj any) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				queue.Add(prefix + key)
			}
		}
	}
	handler := func(prefix string) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue(prefix),
			UpdateFunc: func(_, obj any) { enqueue(prefix)(obj) },
		}
	}
	_, _ = claims.Informer().AddEventHandler(handler("pvc/"))
	_, _ = volumes.Informer().AddEventHandler(handler("pv/"))
	_ = classes.Informer()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	log.Printf("provisioner %s ready", Name)

	p := &provisioner{localDir: *localDir, node: *node, client: client, claims: claims.Lister(), volumes: volumes.Lister(), classes: classes.Lister()}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, quit := queue.Get()
		if quit {
			return
		}
		if err := p.sync(ctx, key); err != nil {
			log.Printf("%s: %v (retrying)", key, err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

type provisioner struct {
	localDir string
	node     string
	client   kubernetes.Interface
	claims   corelisters.PersistentVolumeClaimLister
	volumes  corelisters.PersistentVolumeLister
	classes  storagelisters.StorageClassLister
}

func (p *provisioner) sync(ctx context.Context, key string) error {
	kind, rest, _ := strings.Cut(key, "/")
	namespace, name, err := cache.SplitMetaNamespaceKey(rest)
	if err != nil {
		return nil
	}
	if kind == "pv" {
		return p.reclaim(ctx, name)
	}
	claim, err := p.claims.PersistentVolumeClaims(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if claim.Spec.VolumeName != "" || claim.Status.Phase != corev1.ClaimPending || claim.DeletionTimestamp != nil {
		return nil
	}
	className := ""
	if claim.Spec.StorageClassName != nil {
		className = *claim.Spec.StorageClassName
	}
	class, err := p.classes.Get(className)
	if apierrors.IsNotFound(err) {
		return nil // not ours: a real cluster would leave it Pending too
	} else if err != nil {
		return err
	}
	if class.Provisioner != Name {
		return nil
	}
	size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return nil
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "pvc-" + string(claim.UID),
			Annotations: map[string]string{provisionedBy: Name},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   claim.Spec.AccessModes,
			StorageClassName:              className,
			PersistentVolumeReclaimPolicy: reclaim,
			VolumeMode:                    claim.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind:       "PersistentVolumeClaim",
				APIVersion: "v1",
				Namespace:  claim.Namespace,
				Name:       claim.Name,
				UID:        claim.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				// Never mounted: kwok runs no containers. The path only makes the object valid.
				HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/hs-testenv/" + string(claim.UID)},
			},
		},
	}
	if p.localDir != "" {
		path := filepath.Join(p.localDir, pv.Name)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return err
		}
		pv.Spec.PersistentVolumeSource = corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}}
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{p.node},
			}}}},
		}}
	}
	_, err = p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	} else if err != nil {
		return err
	}
	log.Printf("provisioned %s for %s/%s (%s, class %s)", pv.Name, claim.Namespace, claim.Name, size.String(), className)
	return nil
}

// reclaim deletes a volume of ours once its claim is gone and its policy says Delete.
func (p *provisioner) reclaim(ctx context.Context, name string) error {
	pv, err := p.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if pv.Annotations[provisionedBy] != Name || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	if pv.Spec.Local != nil && p.localDir != "" && filepath.Dir(pv.Spec.Local.Path) == filepath.Clean(p.localDir) {
		if err := os.RemoveAll(pv.Spec.Local.Path); err != nil {
			return err
		}
	}
	err = p.client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		log.Printf("deleted released volume %s", name)
	}
	return err
}
