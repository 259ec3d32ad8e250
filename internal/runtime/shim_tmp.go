package runtime

func ShimMain(args []string) int { return 1 }
